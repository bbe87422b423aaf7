"""`rolekeeper plan | snapshot | lint`: manifests in, decisions computed, reports rendered."""
