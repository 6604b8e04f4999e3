"""Offline evaluation: dialogue data (format, importers, template simulator), metrics, replay through
the Recommender, and the report. Runtime modules never import this package."""
