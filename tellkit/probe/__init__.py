"""Inside the model: does the anchor set task queries apart from general ones (probe.py, with
separation.py's metrics), and which anchor does so most (draft.py drafts candidates, rank.py ranks them)."""
