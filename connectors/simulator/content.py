"""What the simulated customers say and who they are: Norwegian, Swedish and English.

The mix is deliberate: angry and calm texts to exercise priority, long ones to exercise
layout, emoji for text handling, and a few with markup that must show up escaped, never run.
"""

from __future__ import annotations

import random
from typing import Any

TEXTS: list[str] = [
    # Norwegian
    "Hei! Når kommer bestillingen min? Ordrenummer 48213.",
    "Jeg har ventet i TRE uker på en refusjon. Dette er helt uakseptabelt!!!",
    "Takk for rask levering, veldig fornøyd 😊",
    "Hvorfor er appen nede igjen? Får ikke logget inn 😡",
    "Kan jeg bytte størrelse på jakka jeg kjøpte i går?",
    "Hei, jeg flyttet nettopp og lurer på hvordan jeg endrer leveringsadressen på abonnementet mitt. "
    "Jeg har prøvd på nettsiden, men skjemaet sier bare «noe gikk galt» hver gang jeg trykker lagre. "
    "Jeg har også ringt kundeservice to ganger uten å komme gjennom, køen var over førti minutter. "
    "Neste levering er på fredag, og da står ingen hjemme på den gamle adressen. Kan dere hjelpe?",
    "Fikk feil vare i posten. Bestilte blå, fikk grønn 🙄",
    "Er butikken i Bergen åpen på søndag?",
    "Dere trakk pengene to ganger! Vil ha dem tilbake NÅ.",
    "Supert at dere svarer så fort her, tusen takk 🙏",
    "<script>alert('hei')</script> funker rabattkoden eller ikke?",
    # Swedish
    "Hej! Min beställning har inte kommit fram än, vad händer?",
    "Det här är tredje gången jag skriver. Ingen svarar. Jag är så trött på er service!",
    "Tack för hjälpen igår, allt fungerar nu 👍",
    "Går det att avboka en tid som redan är bekräftad?",
    "Varför kostar frakten 99 kr när det stod gratis frakt på kampanjsidan?",
    "Hej, jag köpte en diskmaskin hos er för två månader sedan och nu läcker den vatten på golvet "
    "varje gång vi kör ett program. Installatören har varit här en gång och sa att allt var rätt "
    "monterat. Vi har småbarn hemma och kan inte ha vatten på köksgolvet. Jag vill ha en ny maskin "
    "eller pengarna tillbaka, och jag vill veta vad nästa steg är innan helgen.",
    "Fick ett sms om en leverans jag inte beställt. Är det bedrägeri? 🤔",
    "Ni har den bästa kundtjänsten, tack Anna! ❤️",
    "Paketet var helt sönder när det kom fram 📦💥",
    'Min användarnamn visas som <img src=x onerror=alert(1)> på profilsidan, kan ni fixa?',
    # English
    "Hi, my order #55120 says delivered but nothing arrived.",
    "Worst experience ever. I want to speak to a manager. NOW.",
    "Love the new collection! 😍🔥",
    "Is there a student discount?",
    "Your checkout keeps failing with error 502. I've tried three cards.",
    "I've been a loyal customer for over ten years and I have never been treated like this. I called "
    "on Monday, was promised a call back within 24 hours, and nobody called. I emailed on Tuesday and "
    "got an automatic answer. Today I found out my account was charged again for a subscription I "
    "cancelled in writing last month. Please fix this and confirm in writing what you've refunded.",
    "Quick question: do you ship to Iceland?",
    "The app logged me out and now my points are gone 😭",
    "Thanks for sorting that out so quickly, really appreciated!",
    "Is <b>this</b> bold? Just testing your website, sorry 😅",
    "Can I change the delivery time for tomorrow's order?",
    "My card was declined but the money left my account. What's going on?",
]

FOLLOW_UPS: list[str] = [
    "Takk, men det løste ikke problemet.",
    "Ok, takk for svar!",
    "Jag har redan provat det, fungerar inte.",
    "Tack, då väntar jag 🙂",
    "Thanks! One more thing: can I get a receipt?",
    "That doesn't help at all.",
    "Great, that worked 👍",
    "Hvor lenge må jeg vente da?",
]

EDIT_NOTES: list[str] = ["(edit: typo)", "(redigert)", "(redigerat)", "EDIT: still no answer", "Oppdatering: fortsatt ingenting"]

BRAND_POSTS: list[str] = [
    "Autumn sale starts today! 🍂",
    "Vi har åpnet ny butikk i Trondheim!",
    "Nu finns vi även i Malmö.",
]

FIRST_NAMES: list[str] = [
    "Ingrid", "Ola", "Kari", "Lars", "Sigrid", "Magnus", "Astrid", "Håkon", "Solveig", "Øystein",
    "Elsa", "Björn", "Maja", "Sven", "Linnéa", "Åsa", "Emma", "Oliver", "Sophie", "James", "Priya",
]

LAST_NAMES: list[str] = [
    "Hansen", "Johansen", "Olsen", "Berg", "Haugen", "Nilsson", "Andersson", "Lindqvist",
    "Söderberg", "Ødegård", "Smith", "Taylor", "Brown", "Walker", "Patel",
]


def random_text(rng: random.Random) -> str:
    return rng.choice(TEXTS)


def random_follow_up(rng: random.Random) -> str:
    return rng.choice(FOLLOW_UPS)


def random_edit(rng: random.Random, text: str) -> str:
    return f"{text} {rng.choice(EDIT_NOTES)}"


def random_followers(rng: random.Random) -> int | None:
    """Most customers are small; a few are big enough to raise priority, some do not say."""
    roll = rng.random()
    if roll < 0.05:
        return None
    if roll < 0.15:
        return rng.randint(10_000, 750_000)
    return rng.randint(0, 800)


# Handles are ASCII on most platforms, names are not.
_ASCII = str.maketrans({"å": "a", "ä": "a", "æ": "ae", "ø": "o", "ö": "o", "é": "e"})


def random_customer(rng: random.Random, author_id: str) -> dict[str, Any]:
    """An author object in the webhook format."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    handle = f"{first}{last[0]}{rng.randint(1, 99)}".lower().translate(_ASCII)
    return {"id": author_id, "name": f"{first} {last}", "handle": handle, "followers": random_followers(rng)}
