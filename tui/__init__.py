"""r2r-chat: the terminal chat app of r2r-local (Textual).

The app is a thin client of the headless core: it is handed a loader that returns a loaded
pair (through `r2r_local.pair`), runs generation in a thread worker and never loads models
itself. Textual is imported only inside this package.
"""
