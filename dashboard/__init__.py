"""The training dashboard: live exercises in the browser (Dash), over plain-Python sessions."""
