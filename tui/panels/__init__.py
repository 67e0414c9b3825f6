"""The dashboard's panels: each renders its part from the dashboard's state (plain data) and
posts intent messages (tui.messages); none fetches or decides."""
