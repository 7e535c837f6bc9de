"""The web journal: users open, save and delete their stored messages."""
