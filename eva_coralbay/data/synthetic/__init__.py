"""Synthetic CT for tests and the demo: torso phantoms, and writers of each native layout.

Nothing here is imported by the adapters: these modules write files that the adapters then read
exactly as they read the real releases.
"""
