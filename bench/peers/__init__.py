"""``python -m bench peers``: Reactor and Parse Server + LiveQuery side by side."""
