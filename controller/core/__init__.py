"""The pure core: policy documents, actions, errors, status, guardrails, findings.

Nothing here imports boto3, botocore or kopf, reads a clock, or does I/O: every function is a
table test away from proof.
"""
