"""Topic vocabularies and the title / abstract templates of simulated articles.

Each category has subcategories with their own nouns, plus category-wide nouns, verbs, adjectives
and named entities. Titles are built only from the article's category vocabulary, so a real text
embedding model can recover the topic from the title (tests check this with all-MiniLM-L6-v2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Category:
    name: str
    weight: float  # relative publishing volume
    subcategories: dict[str, tuple[str, ...]]  # subcategory -> specific nouns
    nouns: tuple[str, ...]
    verbs: tuple[str, ...]  # headline style, third person singular
    adjectives: tuple[str, ...]
    entities: tuple[str, ...]
    nouns_de: tuple[str, ...]
    verbs_de: tuple[str, ...]


def _w(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


CATEGORIES: tuple[Category, ...] = (
    Category(
        "politics", 1.4,
        {"elections": _w("election, ballot, polling station, campaign, voter turnout, candidate"),
         "parliament": _w("parliament vote, budget bill, coalition, opposition leader, senate"),
         "diplomacy": _w("summit, treaty, ambassador, foreign minister, sanctions, ceasefire")},
        _w("government, minister, lawmakers, policy, reform, legislation, party, president"),
        _w("approves, rejects, debates, blocks, pushes, announces, vetoes, negotiates"),
        _w("controversial, bipartisan, sweeping, contested, landmark, fragile"),
        _w("Parliament, the Senate, the Prime Minister, the Chancellor, the EU Commission"),
        _w("Regierung, Bundestag, Koalition, Wahl, Minister, Gesetz, Opposition, Haushalt"),
        _w("beschließt, streitet über, verhandelt, kritisiert, blockiert, verabschiedet"),
    ),
    Category(
        "sports", 1.3,
        {"football": _w("striker, goalkeeper, penalty, league table, transfer window, derby"),
         "tennis": _w("grand slam, serve, tiebreak, wimbledon final, doubles match"),
         "athletics": _w("marathon, sprint final, world record, relay team, high jump")},
        _w("coach, season, championship, match, team, fans, victory, tournament, title"),
        _w("wins, beats, stuns, edges, clinches, loses to, crushes, draws with"),
        _w("dramatic, late, historic, dominant, unbeaten, thrilling"),
        _w("Bayern Munich, Real Madrid, the Premier League, FC Barcelona, the Olympic team"),
        _w("Trainer, Saison, Meisterschaft, Spiel, Mannschaft, Tor, Sieg, Bundesliga"),
        _w("gewinnt, schlägt, verliert gegen, feiert, siegt über"),
    ),
    Category(
        "business", 1.1,
        {"markets": _w("stock market, shares, bond yields, investors, index futures, rally"),
         "companies": _w("quarterly earnings, merger, takeover bid, chief executive, layoffs"),
         "economy": _w("inflation, interest rates, central bank, unemployment, gdp growth")},
        _w("profit, revenue, economy, firms, trade, prices, banks, investment, forecast"),
        _w("raises, cuts, reports, warns of, slashes, boosts, misses, beats forecasts on"),
        _w("quarterly, surprising, sluggish, record, volatile, cautious"),
        _w("Wall Street, the ECB, the Federal Reserve, Siemens, Volkswagen, the DAX"),
        _w("Unternehmen, Aktien, Börse, Inflation, Zinsen, Gewinn, Umsatz, Konjunktur"),
        _w("senkt, erhöht, meldet, warnt vor, steigert"),
    ),
    Category(
        "technology", 1.0,
        {"ai": _w("artificial intelligence, chatbot, language model, neural network, chip"),
         "gadgets": _w("smartphone, laptop, smartwatch, headphones, tablet, battery life"),
         "security": _w("data breach, hackers, ransomware, software update, encryption")},
        _w("software, startup, app, users, platform, developers, cloud, algorithm, device"),
        _w("launches, unveils, patches, updates, releases, acquires, open-sources"),
        _w("new, faster, open-source, experimental, cheaper, powerful"),
        _w("Apple, Google, Microsoft, OpenAI, Nvidia, Samsung"),
        _w("Software, Smartphone, Hacker, Datenschutz, App, Künstliche Intelligenz, Chip"),
        _w("stellt vor, veröffentlicht, startet, kauft, aktualisiert"),
    ),
    Category(
        "science", 0.7,
        {"space": _w("telescope, mars rover, orbit, asteroid, rocket launch, galaxy, exoplanet"),
         "biology": _w("species, genome, fossils, evolution, cells, dna sequencing"),
         "physics": _w("particle accelerator, quantum computer, laser, dark matter, neutrinos")},
        _w("researchers, study, scientists, discovery, experiment, laboratory, data, theory"),
        _w("discovers, reveals, detects, confirms, maps, measures, observes"),
        _w("surprising, ancient, distant, rare, unprecedented, tiny"),
        _w("NASA, ESA, CERN, the Max Planck Institute, the James Webb telescope"),
        _w("Forscher, Studie, Wissenschaftler, Entdeckung, Experiment, Weltraum, Teleskop"),
        _w("entdecken, zeigen, messen, beobachten, bestätigen"),
    ),
    Category(
        "health", 0.8,
        {"medicine": _w("vaccine, clinical trial, hospital, surgery, cancer treatment, drug"),
         "fitness": _w("workout, running, strength training, yoga, daily steps, stretching"),
         "nutrition": _w("diet, vitamins, sugar intake, protein, healthy eating, fasting")},
        _w("doctors, patients, health, disease, risk, symptoms, therapy, sleep, heart"),
        _w("lowers, raises, prevents, treats, linked to, reduces, improves"),
        _w("chronic, healthy, preventive, common, early, mental"),
        _w("the WHO, health officials, the NHS, the Robert Koch Institute"),
        _w("Ärzte, Patienten, Gesundheit, Krankheit, Impfung, Klinik, Therapie, Ernährung"),
        _w("senkt, erhöht, verhindert, behandelt, verbessert"),
    ),
    Category(
        "culture", 0.8,
        {"film": _w("movie, director, box office, film festival, sequel, streaming series"),
         "music": _w("album, concert tour, singer, band, orchestra, music charts"),
         "books": _w("novel, author, bestseller, poetry, literary prize, memoir")},
        _w("artist, audience, premiere, stage, museum, exhibition, actor, critics, theatre"),
        _w("premieres, celebrates, honours, releases, tops, wins, revives"),
        _w("acclaimed, debut, sold-out, iconic, experimental, beloved"),
        _w("Netflix, the Berlinale, Cannes, the Grammys, the Louvre"),
        _w("Film, Theater, Museum, Ausstellung, Konzert, Roman, Künstler, Premiere"),
        _w("feiert, zeigt, ehrt, eröffnet, präsentiert"),
    ),
    Category(
        "travel", 0.5,
        {"destinations": _w("beach resort, city break, island, national park, old town"),
         "airlines": _w("flight, airport, airline, cabin crew, delays, cheap fares"),
         "hotels": _w("hotel, hostel, booking, room rates, holiday rental, check-in")},
        _w("tourists, holiday, trip, travellers, vacation, tourism, passport, cruise"),
        _w("reopens, attracts, bans, welcomes, cancels, offers, doubles"),
        _w("hidden, scenic, crowded, budget, remote, luxury"),
        _w("Lufthansa, Ryanair, Venice, the Alps, Lisbon, Bali"),
        _w("Urlaub, Reise, Flughafen, Hotel, Strand, Touristen, Flug, Bahn"),
        _w("öffnet, lockt, streicht, verbietet, bietet"),
    ),
    Category(
        "food", 0.5,
        {"recipes": _w("recipe, soup, pasta, baking, dessert, roast vegetables, bread dough"),
         "restaurants": _w("restaurant, chef, michelin star, menu, bistro, tasting menu"),
         "drinks": _w("wine, coffee, craft beer, cocktail, tea, vineyard")},
        _w("kitchen, flavour, ingredients, dinner, cooking, meal, spices, cheese"),
        _w("serves, reinvents, tastes, bakes, pairs, perfects, grills"),
        _w("seasonal, crispy, homemade, spicy, rustic, vegan"),
        _w("the Michelin Guide, Jamie Oliver, Gordon Ramsay, Noma"),
        _w("Rezept, Küche, Koch, Restaurant, Wein, Kaffee, Kuchen, Suppe"),
        _w("kocht, backt, serviert, verfeinert, probiert"),
    ),
    Category(
        "climate", 0.6,
        {"weather": _w("heatwave, storm, flooding, rainfall, snowfall, drought, forecast"),
         "energy": _w("solar power, wind farm, heat pump, power grid, electric cars"),
         "environment": _w("emissions, carbon dioxide, deforestation, glaciers, biodiversity")},
        _w("climate, temperatures, scientists, pollution, wildlife, ocean, warming, renewables"),
        _w("threatens, hits, cuts, warns of, accelerates, floods, protects"),
        _w("extreme, record, green, rising, severe, sustainable"),
        _w("the UN climate panel, Greenpeace, the IPCC, the weather service"),
        _w("Klima, Unwetter, Hitzewelle, Hochwasser, Emissionen, Windkraft, Solarstrom"),
        _w("bedroht, trifft, senkt, warnt vor, schützt"),
    ),
)
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)
BRANDS_EN: tuple[str, ...] = ("daily-ledger", "metro-wire", "the-courier")
BRAND_DE = "nordkurier"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
PREPS = ("amid", "after", "over", "despite", "ahead of", "with")


def subcategory_names(topic: int) -> tuple[str, ...]:
    return tuple(CATEGORIES[topic].subcategories)


def _pick(words: tuple[str, ...], r: int) -> str:
    return words[r % len(words)]


def _pick2(words: tuple[str, ...], r1: int, r2: int) -> tuple[str, str]:
    """Two different words (when the list has two)."""
    i = r1 % len(words)
    j = (i + 1 + r2 % max(len(words) - 1, 1)) % len(words)
    return words[i], words[j]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def article_text(topic: int, sub: int, language: str, r: np.ndarray) -> tuple[str, str, str]:
    """(title, abstract, entity) of one article from 12 random integers `r` (>= 0)."""
    cat = CATEGORIES[topic]
    sub_nouns = cat.subcategories[subcategory_names(topic)[sub]]
    entity = _pick(cat.entities, r[0])
    if language == "de":
        noun, noun2 = _pick2(cat.nouns_de, r[1], r[2])
        title = f"{noun}: {entity} {_pick(cat.verbs_de, r[3])} {_pick(sub_nouns, r[4])}"
        abstract = (f"{_pick(cat.nouns_de, r[5])} und {noun2} - {entity} "
                    f"{_pick(cat.verbs_de, r[6])} {_pick(sub_nouns, r[7])}.")
        return title, abstract, entity
    sn, sn2 = _pick2(sub_nouns, r[1], r[2])
    sn3 = _pick(sub_nouns, r[3])
    noun, noun2 = _pick2(cat.nouns, r[4], r[5])
    verb, verb2 = _pick2(cat.verbs, r[6], r[7])
    adj = _pick(cat.adjectives, r[8])
    pattern = r[9] % 4
    if pattern == 0:
        title = f"{_cap(entity)} {verb} {sn} {_pick(PREPS, r[10])} {noun}"
    elif pattern == 1:
        title = f"{_cap(adj)} {sn} {verb} {noun}"
    elif pattern == 2:
        title = f"{_cap(sn)}: {entity} {verb} {adj} {noun}"
    else:
        title = f"How {noun} {verb2} {sn}, and what it means for {noun2}"
    abstract = (f"{_cap(entity)} {verb} the {adj} {sn2} on {_pick(WEEKDAYS, r[11])}, "
                f"as {noun} and {noun2} {verb2} {sn3}. "
                f"Observers say the {noun2} will shape {sn} for weeks.")
    return title, abstract, entity
