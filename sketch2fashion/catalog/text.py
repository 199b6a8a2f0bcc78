"""Text signals: BM25 over product text, colour words in queries, and score fusion.

A shopper may type a few words beside the sketch ("long red trouser"). BM25 matches them
against titles and descriptions; colour words are also pulled out of the query and matched
against the colours measured on each product photo (`catalog.colour.dominant_colours`), because
shop titles say "crimson", "oxblood" or nothing at all where the shopper says "red".
`fuse_scores` then combines image, colour and text scores, whose scales differ, into one ranking.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

TOKEN = re.compile(r"[a-z0-9]+")
K1 = 1.5
B = 0.75

COLOUR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "white": ("white", "snow", "optic white"),
    "ivory": ("ivory", "eggshell"),
    "cream": ("cream", "off white", "offwhite", "ecru", "vanilla"),
    "light gray": ("light gray", "light grey", "pale gray", "pale grey", "silver", "heather gray",
                   "heather grey"),
    "gray": ("gray", "grey", "slate"),
    "dark gray": ("dark gray", "dark grey", "charcoal", "graphite", "anthracite"),
    "black": ("black", "jet", "onyx"),
    "sky blue": ("sky blue", "light blue", "baby blue", "pale blue", "powder blue"),
    "blue": ("blue", "cobalt", "royal blue", "denim", "azure"),
    "navy": ("navy", "navy blue", "dark blue", "midnight", "midnight blue"),
    "teal": ("teal", "turquoise", "petrol", "aqua"),
    "green": ("green", "emerald", "forest green", "kelly green", "bottle green"),
    "olive": ("olive", "khaki", "army green", "sage"),
    "yellow": ("yellow", "mustard", "lemon", "gold"),
    "orange": ("orange", "rust", "tangerine", "coral"),
    "red": ("red", "crimson", "scarlet", "cherry", "tomato"),
    "burgundy": ("burgundy", "maroon", "wine", "oxblood", "bordeaux", "dark red"),
    "pink": ("pink", "fuchsia", "magenta", "hot pink", "rose"),
    "pale pink": ("pale pink", "light pink", "blush", "baby pink", "dusty pink"),
    "purple": ("purple", "violet", "plum", "lilac", "lavender", "mauve"),
    "brown": ("brown", "chocolate", "chestnut", "cognac", "mocha"),
    "beige": ("beige", "tan", "camel", "sand", "nude", "taupe", "stone"),
}
"""Canonical colour name (as in catalog.colour.NAMED_COLOURS) -> words shoppers use for it."""

COLOUR_FAMILIES: dict[str, str] = {
    "white": "white", "ivory": "white", "cream": "white",
    "light gray": "gray", "gray": "gray", "dark gray": "gray",
    "black": "black",
    "sky blue": "blue", "blue": "blue", "navy": "blue", "teal": "blue",
    "green": "green", "olive": "green",
    "yellow": "yellow", "orange": "orange",
    "red": "red", "burgundy": "red",
    "pink": "pink", "pale pink": "pink",
    "purple": "purple",
    "brown": "brown", "beige": "brown",
}
"""Colours a shopper would accept for one another ("blue" shown a navy shirt is a near miss)."""
FAMILY_MATCH = 0.5
"""How much a same-family colour counts for the colour asked for."""
PRESENT_SHARE = 0.25
"""A colour covering this share of the garment counts as fully present (two-tone garments)."""


def _stem(word: str) -> str:
    """Simple plural stripping, so "trousers" finds "trouser" and "dresses" finds "dress"."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenise(text: str) -> list[str]:
    """Lower-cased alphanumeric words, plurals stripped ("Long-sleeve tops" -> long, sleeve, top)."""
    return [_stem(word) for word in TOKEN.findall(text.lower())]


class TextIndex:
    """Okapi BM25 (k1, b) over product texts, kept as per-term postings in NumPy arrays.

    IDF is the non-negative Lucene form log(1 + (N - df + 0.5) / (df + 0.5)), so a word in
    every product adds little rather than subtracting.
    """

    def __init__(self, docs: Mapping[str, str], *, k1: float = K1, b: float = B) -> None:
        self.ids: list[str] = list(docs)
        self.k1, self.b = float(k1), float(b)
        counts = [Counter(tokenise(docs[i])) for i in self.ids]
        self.lengths = np.array([sum(c.values()) for c in counts], np.float64)
        average = float(self.lengths.mean()) if len(self.ids) and self.lengths.mean() > 0 else 1.0
        self._norm = self.k1 * (1.0 - self.b + self.b * self.lengths / average)
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for doc, counter in enumerate(counts):
            for term, tf in counter.items():
                rows, tfs = postings.setdefault(term, ([], []))
                rows.append(doc)
                tfs.append(tf)
        n = len(self.ids)
        self._postings = {term: (np.array(rows), np.array(tfs, np.float64),
                                 float(np.log(1.0 + (n - len(rows) + 0.5) / (len(rows) + 0.5))))
                          for term, (rows, tfs) in postings.items()}

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every product (aligned with `ids`) for the query; 0 = no word in common."""
        scores = np.zeros(len(self.ids), np.float64)
        for term in set(tokenise(query)):
            if term not in self._postings:
                continue
            rows, tf, idf = self._postings[term]
            scores[rows] += idf * tf * (self.k1 + 1.0) / (tf + self._norm[rows])
        return scores.astype(np.float32)


_PHRASES: dict[tuple[str, ...], str] = {
    tuple(TOKEN.findall(phrase)): name
    for name, phrases in COLOUR_SYNONYMS.items() for phrase in phrases
}
_LONGEST_PHRASE = max(len(p) for p in _PHRASES)


def colour_words(query: str) -> list[str]:
    """Canonical colour names mentioned in a query, in order, without repeats.

    Longest phrase first, so "dark blue" is navy (not blue) and "off-white" is cream (not
    white). Words are not plural-stripped here: colour words have no plurals worth handling.
    """
    words = TOKEN.findall(query.lower())
    found: list[str] = []
    i = 0
    while i < len(words):
        for length in range(min(_LONGEST_PHRASE, len(words) - i), 0, -1):
            name = _PHRASES.get(tuple(words[i:i + length]))
            if name is not None:
                if name not in found:
                    found.append(name)
                i += length
                break
        else:
            i += 1
    return found


def colour_affinity(asked: str, shown: str) -> float:
    """1 for the same colour name, FAMILY_MATCH for the same family (navy for blue), else 0."""
    if asked == shown:
        return 1.0
    family = COLOUR_FAMILIES.get(asked)
    return FAMILY_MATCH if family is not None and family == COLOUR_FAMILIES.get(shown) else 0.0


def colour_word_match(query_colours: Sequence[str],
                      product_colours: Sequence[tuple[str, float]]) -> float:
    """How well a product's measured colours answer the query's colour words, in [0, 1].

    Per asked colour: its best product colour, scored by affinity (1 same name, FAMILY_MATCH
    same family) times its share of the garment (PRESENT_SHARE or more counts fully); then the
    mean over asked colours. So "red" scores 1 on a mostly red product, about 0.4 on a
    red-trimmed one, 0.5 on a burgundy one, and a "red and blue" query prefers a red/blue
    product to a solid red one. No colour asked: 0.
    """
    if not query_colours:
        return 0.0
    presence = [max((colour_affinity(asked, name) * min(1.0, fraction / PRESENT_SHARE)
                     for name, fraction in product_colours), default=0.0)
                for asked in query_colours]
    return float(np.mean(presence))


def normalise_scores(scores: np.ndarray, method: str = "zscore") -> np.ndarray:
    """Scores on a common scale: z-scores (mean 0, sd 1) or ranks scaled to [0, 1] (best = 1).

    A constant signal (e.g. no query word matched anything) becomes all zeros: it says nothing
    about the order, so it must not shift the fused ranking.
    """
    values = np.asarray(scores, np.float64)
    if values.size == 0:
        return values.astype(np.float32)
    if method == "zscore":
        spread = values.std()
        return ((values - values.mean()) / spread if spread > 0 else np.zeros_like(values)).astype(np.float32)
    if method == "rank":
        if values.size == 1 or np.all(values == values[0]):
            return np.zeros(values.shape, np.float32)
        order = np.argsort(values, kind="stable")
        ranks = np.empty(values.size, np.float64)
        ranks[order] = np.arange(values.size)
        for value in np.unique(values):  # ties share their mean rank
            tied = values == value
            ranks[tied] = ranks[tied].mean()
        return (ranks / (values.size - 1)).astype(np.float32)
    raise ValueError(f"method must be 'zscore' or 'rank', got {method!r}")


def fuse_scores(signals: Mapping[str, np.ndarray], weights: Mapping[str, float],
                method: str = "zscore") -> np.ndarray:
    """Weighted sum of normalised signals (image, colour, text...), one score per product.

    Every signal needs a weight (a typo must not silently drop a signal); weights for signals
    that are absent (no text typed) are skipped. All signals must have the same length.
    """
    unweighted = set(signals) - set(weights)
    if unweighted:
        raise ValueError(f"no weight for signal(s) {sorted(unweighted)}; weights: {sorted(weights)}")
    lengths = {name: len(np.asarray(values)) for name, values in signals.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"signals differ in length: {lengths}")
    size = next(iter(lengths.values()), 0)
    fused = np.zeros(size, np.float32)
    for name, values in signals.items():
        if weights[name]:
            fused += np.float32(weights[name]) * normalise_scores(values, method)
    return fused
