"""Training and evaluation material for the pair verifier (not imported at runtime).

Loads the shared semantic datasets by path, embeds them with all-MiniLM-L6-v2 (cached under
/tmp so iterations do not re-embed), builds synthetic near-duplicate traps, and trains the
small model that ships as ``llmcache/semantic/verifier_model.json``. Needs the ``dev`` and
``local-embeddings`` extras.
"""
