"""Words about genres and eras, kept once: the turn interpreter, the reason checks and the dialogue
simulator all read these tables.

The tables answer different questions, so they differ on purpose: ``GENRE_WORDS`` says which words in
a user's message *ask for* a genre ("scary" -> Horror); ``GENRE_SYNONYMS`` says which words in a
reason *state* an item's genre; ``GENRE_ADJECTIVES``/``GENRE_NOUNS`` are how the simulator *writes*
a genre in a sentence.
"""

from __future__ import annotations

# User words that ask for a genre (turn interpretation). Keys are matched as whole words.
GENRE_WORDS = {
    "action": "Action", "adventure": "Adventure", "adventures": "Adventure", "animated": "Animation",
    "animation": "Animation", "cartoon": "Animation", "cartoons": "Animation", "anime": "Animation",
    "biopic": "Biography", "biography": "Biography", "comedy": "Comedy", "comedies": "Comedy",
    "funny": "Comedy", "crime": "Crime", "gangster": "Crime", "documentary": "Documentary",
    "documentaries": "Documentary", "drama": "Drama", "dramas": "Drama", "family": "Family",
    "kids": "Family", "children": "Family", "fantasy": "Fantasy", "historical": "History",
    "history": "History", "horror": "Horror", "scary": "Horror", "music": "Music", "musical": "Musical",
    "musicals": "Musical", "mystery": "Mystery", "whodunit": "Mystery", "romance": "Romance",
    "romantic": "Romance", "love story": "Romance", "sci-fi": "Science Fiction", "scifi": "Science Fiction",
    "science fiction": "Science Fiction", "space": "Science Fiction", "sport": "Sport", "sports": "Sport",
    "thriller": "Thriller", "thrillers": "Thriller", "suspense": "Thriller", "war": "War", "western": "Western",
    "westerns": "Western",
}

# Words that state a genre in a reason (genre, lower case -> synonyms), for the grounding check.
GENRE_SYNONYMS = {
    "science fiction": ("sci-fi", "scifi", "sci fi"),
    "animation": ("animated", "cartoon"),
    "documentary": ("doc",),
    "romance": ("romantic",),
    "comedy": ("comic", "funny", "comedic"),
    "horror": ("scary", "horrifying"),
    "thriller": ("thrilling", "suspense", "suspenseful"),
    "fantasy": ("fantastical",),
    "musical": ("music", "songs"),
    "war": ("wartime",),
    "crime": ("criminal", "gangster", "heist"),
    "mystery": ("mysterious", "whodunit"),
    "family": ("kids", "children"),
    "adventure": ("adventurous",),
    "western": ("cowboy", "cowboys"),
}

# Decade names (first year of the decade -> word).
DECADE_WORDS = {
    1920: "twenties",
    1930: "thirties",
    1940: "forties",
    1950: "fifties",
    1960: "sixties",
    1970: "seventies",
    1980: "eighties",
    1990: "nineties",
    2000: "noughties",
}

# How the simulator writes a genre as an adjective (choices) and as a plural noun.
GENRE_ADJECTIVES = {
    "science fiction": ["sci-fi", "science fiction"],
    "animation": ["animated"],
    "biography": ["biographical"],
    "history": ["historical"],
    "sport": ["sports"],
    "film-noir": ["noir"],
    "romance": ["romance", "romantic"],
}

GENRE_NOUNS = {
    "science fiction": "sci-fi",
    "biography": "biopics",
    "sport": "sports films",
    "history": "history films",
    "music": "music films",
    "family": "family films",
    "war": "war films",
    "musical": "musicals",
    "western": "westerns",
    "animation": "animation",
    "thriller": "thrillers",
    "mystery": "mysteries",
    "documentary": "documentaries",
    "adventure": "adventure films",
    "crime": "crime films",
}
