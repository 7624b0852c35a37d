"""The semantic tier: answers to requests whose last user turn means the same thing.

Vectors live in an index (FAISS in process, redisvl on Redis) that points at entries kept by
the exact tiers; a verifier decides whether a close candidate may be served. Importing this
package needs no extra; the modules that need numpy, faiss or redisvl import them lazily and
name the extra to install.
"""
