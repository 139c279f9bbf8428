"""Command-line scripts over air/: train, evaluate, benchmark."""
