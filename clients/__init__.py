"""What users touch: the softphone simulator, the demo, and the web pages."""
