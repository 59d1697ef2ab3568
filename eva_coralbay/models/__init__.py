"""CoralBay encoders, their weights and their eva registrations."""
