"""Package data of the window: the theme (style.qss), the icon and the desktop entry."""
