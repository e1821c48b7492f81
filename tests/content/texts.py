"""Fixed headlines for the embedding tests (English and German, two topics each)."""

FOOTBALL = [
    "Liverpool beat Manchester United 2-0 in a thrilling Premier League match",
    "Chelsea striker scores twice as the Blues win the derby at Stamford Bridge",
]
FINANCE = "Stock markets tumble as the Federal Reserve signals further interest rate hikes"
GERMAN_FOOTBALL = [
    "Bayern München gewinnt das Spitzenspiel gegen Borussia Dortmund mit 3:1",
    "Dortmund verliert in der Bundesliga gegen die Bayern, Fußballfans enttäuscht",
]
GERMAN_FINANCE = "Die Europäische Zentralbank erhöht den Leitzins wegen hoher Inflation"

# a mix for agreement tests: short, long (> 256 tokens, truncated), German, punctuation, empty
MIXED = [
    *FOOTBALL,
    FINANCE,
    *GERMAN_FOOTBALL,
    GERMAN_FINANCE,
    "Storm",
    "",
    "Scientists discover a new species of deep-sea octopus off the coast of Chile. "
    "The animal, found at a depth of 4,000 metres, glows in the dark.",
    "Q3 earnings: ACME Corp. beats estimates (EPS $1.42 vs. $1.30); shares +7% after hours!",
    "The city council approved a new budget for public schools. " * 40,
    "Wildfire forces thousands to evacuate in southern California as winds pick up",
    "Apple unveils its latest smartphone lineup with a faster chip and a better camera",
]
