"""The coach: the playbook turned into live cues, steps done, warnings and alerts."""
