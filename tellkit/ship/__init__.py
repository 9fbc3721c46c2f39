"""Use a trained run: export it (merged safetensors, GGUF), predict over a file, chat with it.

Every entry point takes a run folder (or a compare folder's ``best/``) and applies the
anchor the run was trained with, so the model sees new inputs the way it saw its task.
Imports are lazy: torch and transformers load only when a command runs. The run itself is read by
tellkit.runs.source (open_run), as evaluation reads it.
"""
