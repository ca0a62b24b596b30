"""Event generation with Pythia 8 and FastJet into BEAD CSVs (SPEC §5)."""
