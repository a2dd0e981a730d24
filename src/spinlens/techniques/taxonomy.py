"""The 14 technique classes of the PTC corpus: names exactly as in its label files,
a plain definition in our own words, the family each belongs to and a highlight colour."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Technique:
    name: str  # as spelled in PTC's train-task-flc-tc.labels
    label: str  # for people
    category: str
    definition: str
    colour: str  # highlight colour, light enough for black text


TECHNIQUES: tuple[Technique, ...] = (
    Technique(
        "Appeal_to_Authority",
        "Appeal to authority",
        "Justification",
        "Presents a claim as true because an expert, official or institution said so, "
        "instead of showing the evidence.",
        "#ffd8a8",
    ),
    Technique(
        "Appeal_to_fear-prejudice",
        "Appeal to fear or prejudice",
        "Justification",
        "Builds support for an idea by stirring up anxiety, panic or hostility toward a "
        "group or an alternative.",
        "#ffa8a8",
    ),
    Technique(
        "Bandwagon,Reductio_ad_hitlerum",
        "Bandwagon / Reductio ad Hitlerum",
        "Justification",
        "Urges acceptance because 'everyone' agrees, or rejection because a hated group "
        "holds the idea.",
        "#e599f7",
    ),
    Technique(
        "Black-and-White_Fallacy",
        "Black-and-white fallacy",
        "Simplification",
        "Offers two options as the only possible ones when more exist, often casting one "
        "as clearly right.",
        "#b197fc",
    ),
    Technique(
        "Causal_Oversimplification",
        "Causal oversimplification",
        "Simplification",
        "Blames a complex outcome on a single cause, or treats a sequence as proof of "
        "cause and effect.",
        "#91a7ff",
    ),
    Technique(
        "Doubt",
        "Doubt",
        "Attack on reputation",
        "Questions the credibility of a person, group or institution to undermine it, "
        "without substantiating the charge.",
        "#74c0fc",
    ),
    Technique(
        "Exaggeration,Minimisation",
        "Exaggeration / minimisation",
        "Manipulative wording",
        "Overstates something to make it seem bigger or worse, or downplays it to make it "
        "seem harmless.",
        "#66d9e8",
    ),
    Technique(
        "Flag-Waving",
        "Flag-waving",
        "Justification",
        "Justifies an idea by appealing to patriotism, national identity or a group's pride.",
        "#63e6be",
    ),
    Technique(
        "Loaded_Language",
        "Loaded language",
        "Manipulative wording",
        "Uses words and phrases with strong emotional charge to sway the reader rather "
        "than inform.",
        "#ffec99",
    ),
    Technique(
        "Name_Calling,Labeling",
        "Name calling / labelling",
        "Attack on reputation",
        "Attaches a label the audience fears, hates or admires to a person or group "
        "instead of arguing about what they do.",
        "#ffc9c9",
    ),
    Technique(
        "Repetition",
        "Repetition",
        "Manipulative wording",
        "Repeats the same message again and again so that it sticks and starts to feel true.",
        "#c0eb75",
    ),
    Technique(
        "Slogans",
        "Slogans",
        "Call",
        "A short, striking phrase that packs a judgement or call to action into a label "
        "or stereotype.",
        "#ffd43b",
    ),
    Technique(
        "Thought-terminating_Cliches",
        "Thought-terminating cliché",
        "Call",
        "A stock phrase that discourages further thought or discussion ('it is what it is').",
        "#d8f5a2",
    ),
    Technique(
        "Whataboutism,Straw_Men,Red_Herring",
        "Whataboutism / straw man / red herring",
        "Distraction",
        "Deflects criticism by pointing at an opponent's faults, misrepresents their "
        "position, or changes the subject.",
        "#dee2e6",
    ),
)

BY_NAME: dict[str, Technique] = {t.name: t for t in TECHNIQUES}
NAMES: tuple[str, ...] = tuple(t.name for t in TECHNIQUES)


def get(name: str) -> Technique:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown technique {name!r}; known: {', '.join(NAMES)}") from None
