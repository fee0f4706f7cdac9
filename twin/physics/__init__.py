"""Physics of the facility, vectorised with numpy: one step advances every room, tank and door."""
