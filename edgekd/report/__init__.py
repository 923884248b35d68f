"""Size-vs-accuracy and latency-vs-accuracy reports (HTML, Markdown, JSON) and run comparison."""
