"""Batched greedy/sampled generation: the decoder evaluation, checkpoint selection, anchor drafting and
`tellkit predict` share (generate.py), its KV slots and fused step (kvslots, lean_step, linear_pack,
decode), stop rules (stops.py), and the vLLM backend (vllm_backend.py)."""
