"""chatrec: a conversational recommender."""
