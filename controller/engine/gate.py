"""What the platform allows one object: its guardrails, and the facts they are judged with.

The operator, the admission webhook and `rolekeeper plan` each build a `Gate` and hand it to
`decide`, so the three enforcement points run one implementation (`core.guardrails`). A denied
object is decided before anything is read or written; a guardrail tightened later therefore
stops every write to the entities it already manages (they are reported, never changed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from controller.core import guardrails
from controller.core.guardrails import Evaluation, Guardrail
from controller.kinds.base import Desired, Entity, Kind


@dataclass(frozen=True)
class Gate:
    """The guardrails in force, and what they need to know about one object's world."""

    guardrails: tuple[Guardrail, ...] = ()
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # namespace -> labels
    # Objects of the namespace that precede this one (older), by kind; None: limits not checked.
    preceding: Mapping[str, int] | None = None
    account_id: str | None = None  # resolves "self" in trust rules; None: every account foreign
    # The operator's own AWS identity as ARN resource parts ("role/Name", "user/Name"): never
    # adopted, whatever a guardrail says (a tenant must not take over the operator itself).
    operator: frozenset[str] = frozenset()
    # Guardrails that exist but cannot be read: the operator fails closed (denies every write)
    # rather than run without rules a platform team believes are in force.
    broken: tuple[str, ...] = ()

    def judge(self, kind: Kind, desired: Desired) -> Evaluation:
        """The guardrail verdict on what `desired` asks for (adoption included)."""
        # Observe never writes, so it adopts nothing: `adopt: true` (kept for the flip to
        # Manage, as `rolekeeper import` writes it) is judged only once the object manages.
        view = replace(
            kind.view(desired),
            observe_only=desired.observe_only,
            adopt=desired.adopt and not desired.observe_only,
        )
        if self.broken:
            return Evaluation(
                denied=tuple(
                    guardrails.Violation(name, "valid", "IAMGuardrail", problem)
                    for name, problem in (b.split(": ", 1) for b in self.broken)
                )
            )
        return guardrails.evaluate(
            self.guardrails,
            view,
            self.labels.get(view.namespace, {}),
            objects_in_namespace=self.preceding,
            account_id=self.account_id,
        )

    def protects(self, observed: Entity) -> bool:
        """Whether `observed` is the operator's own identity."""
        resource = observed.arn.split(":", 5)[-1]  # role/path/Name
        kind, _, rest = resource.partition("/")
        return f"{kind}/{rest.rsplit('/', 1)[-1]}" in self.operator


def operator_identity(caller_arn: str) -> frozenset[str]:
    """ARN resource parts naming the caller: an assumed role's session ARN names its role."""
    resource = caller_arn.split(":", 5)[-1] if caller_arn.startswith("arn:") else ""
    kind, _, rest = resource.partition("/")
    if kind == "assumed-role":
        return frozenset({f"role/{rest.split('/', 1)[0]}"})
    if kind in ("role", "user"):
        return frozenset({f"{kind}/{rest.rsplit('/', 1)[-1]}"})
    return frozenset()
