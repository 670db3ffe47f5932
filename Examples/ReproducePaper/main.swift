print("reproduce-paper: not yet built")
