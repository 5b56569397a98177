"""One search call, in the order it happens: settings checked, a resume planned, the
event-driven tuner run with its recorder, progress display and time limit."""
