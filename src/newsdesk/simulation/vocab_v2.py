"""World v2 text: named entities per topic, story names, and titles that carry both.

Every topic has its own people, places and organisations (the organisations are the category's
`entities` from `vocab.CATEGORIES`). A story is named by a codeword and one of its
subcategory's nouns ("Kestrel chip", "Harrowgate ceasefire"); every article of the story puts
that name and the story's entities into its title and abstract. So articles of one story share
rare words a text model can match, while two stories of one topic share only the topic's words:
a category feature cannot tell them apart, a text model can.
"""

from __future__ import annotations

import numpy as np

from newsdesk.simulation.vocab import CATEGORIES, PREPS, WEEKDAYS, subcategory_names

PERSON, PLACE, ORGANISATION = 0, 1, 2
PEOPLE_PER_TOPIC = 4
PLACES_PER_TOPIC = 3

_FIRST = ("Anna", "Lukas", "Maria", "Jonas", "Elena", "David", "Sofia", "Felix", "Clara",
          "Omar", "Leila", "Henrik", "Marta", "Tomas", "Ingrid", "Rafael", "Yuki", "Amara",
          "Pavel", "Noor")
_LAST = ("Halvorsen", "Okafor", "Lindqvist", "Moreau", "Castellano", "Brandt", "Nakamura",
         "Petrov", "Achterberg", "Delacroix", "Osei", "Kowalski", "Fairbanks", "Ramaswamy",
         "Vestergaard", "Quintero", "Hollis", "Zielinski", "Marchetti", "Abernathy",
         "Sorensen", "Takahashi", "Oyelaran", "Whitcombe", "Grunewald", "Esposito",
         "Blackwood", "Ferreira", "Kuznetsov", "Lindgren", "Mbeki", "Thornbury", "Valente",
         "Haddad", "Novak", "Rosenthal", "Calloway", "Ishikawa", "Dunmore", "Reyes")
_CITIES = ("Rotterdam", "Gdansk", "Porto", "Tallinn", "Marseille", "Leipzig", "Bilbao",
           "Malmo", "Trieste", "Aarhus", "Graz", "Ghent", "Bergen", "Valletta", "Cork",
           "Krakow", "Lyon", "Seville", "Turin", "Brno", "Dresden", "Nantes", "Tampere",
           "Utrecht", "Salzburg", "Bologna", "Riga", "Innsbruck", "Lille", "Split")
_CODEWORDS = ("Kestrel", "Harrowgate", "Bluewater", "Silverpine", "Northgate", "Amberly",
              "Redcliff", "Stonebridge", "Foxhollow", "Ironvale", "Larkspur", "Westmere",
              "Copperfield", "Ravensworth", "Glenmore", "Highmoor", "Ashcombe", "Thistledown",
              "Marbleton", "Oakhurst", "Windmere", "Falconridge", "Brightwater", "Elmstead",
              "Cobalt", "Meridian", "Halcyon", "Sable", "Juniper", "Obsidian", "Tamarind",
              "Vantage", "Zephyr", "Quarry", "Lantern", "Borealis", "Cinder", "Driftwood",
              "Equinox", "Granite", "Harbinger", "Indigo", "Jasper", "Keystone", "Lodestar",
              "Monarch", "Nimbus", "Orchard")


def topic_entities(n_topics: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, topic, kind) of every entity of the first `n_topics` topics, topic by topic.

    Names are fixed by the vocabulary (not by the seed): people and places are distinct across
    topics, organisations are the category's own.
    """
    names: list[str] = []
    topic: list[int] = []
    kind: list[int] = []
    for t in range(n_topics):
        for i in range(PEOPLE_PER_TOPIC):
            g = t * PEOPLE_PER_TOPIC + i  # < 40 people: distinct (first, last) pairs
            names.append(f"{_FIRST[g % len(_FIRST)]} {_LAST[g % len(_LAST)]}")
            kind.append(PERSON)
        for i in range(PLACES_PER_TOPIC):
            names.append(_CITIES[(t * PLACES_PER_TOPIC + i) % len(_CITIES)])
            kind.append(PLACE)
        for org in CATEGORIES[t].entities:
            names.append(org)
            kind.append(ORGANISATION)
        topic.extend([t] * (len(names) - len(topic)))
    return names, np.array(topic, dtype=np.int16), np.array(kind, dtype=np.int8)


def story_name(topic: int, sub: int, codeword: int, noun: int) -> str:
    """"Kestrel chip": a codeword and a noun of the story's subcategory."""
    nouns = CATEGORIES[topic].subcategories[subcategory_names(topic)[sub]]
    return f"{_CODEWORDS[codeword % len(_CODEWORDS)]} {nouns[noun % len(nouns)]}"


def _p(words: tuple[str, ...], r: int) -> str:
    return words[int(r) % len(words)]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def article_text_v2(topic: int, sub: int, language: str, story: str | None,
                    entities: list[str], r: np.ndarray) -> tuple[str, str]:
    """(title, abstract) of one v2 article from 10 random integers `r` (>= 0).

    `story` is the story's name (None for a standalone article); `entities` the names the
    article mentions (1 or 2). Topic words fill the rest, as in v1.
    """
    cat = CATEGORIES[topic]
    sub_nouns = cat.subcategories[subcategory_names(topic)[sub]]
    e1 = entities[0]
    others = [e for e in cat.entities if e != e1]  # a standalone article names one more
    e2 = entities[1] if len(entities) > 1 else _p(tuple(others), r[0])
    subject = story if story is not None else _p(sub_nouns, r[1])
    if language == "de":
        noun, noun2 = _p(cat.nouns_de, r[2]), _p(cat.nouns_de, r[3] + 1)
        title = f"{noun}: {e1} {_p(cat.verbs_de, r[4])} {subject}"
        abstract = (f"{_cap(subject)} - {e1} und {e2} {_p(cat.verbs_de, r[5])} {noun2} "
                    f"und {_p(sub_nouns, r[6])}.")
        return title, abstract
    noun, noun2 = _p(cat.nouns, r[2]), _p(cat.nouns, r[3] + 1)
    verb, verb2 = _p(cat.verbs, r[4]), _p(cat.verbs, r[5] + 1)
    adj = _p(cat.adjectives, r[6])
    pattern = int(r[7]) % 4
    if pattern == 0:
        title = f"{_cap(e1)} {verb} {subject} {_p(PREPS, r[8])} {noun}"
    elif pattern == 1:
        title = f"{_cap(subject)}: {e1} {verb} {adj} {noun}"
    elif pattern == 2:
        title = f"{_cap(adj)} {subject} {verb2} {noun} for {e1}"
    else:
        title = f"What the {subject} means for {e1} and {noun2}"
    abstract = (f"{_cap(e1)} and {e2} {verb} the {adj} {subject} on {_p(WEEKDAYS, r[9])}, "
                f"as {noun} and {noun2} {verb2} {_p(sub_nouns, r[8])}.")
    return title, abstract
