"""The fixed benchmark set: 24 expository paragraphs written for this project (not taken from any source).

Each is a dense, adult-register paragraph of 55-95 words on a school subject, paired with the grade a
student would ask it to be rewritten for. They are the same for every level, backend and policy, so
outputs can be compared paragraph by paragraph.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paragraph:
    """One input text and the request it comes with."""

    pid: str
    subject: str
    grade_level: int
    text: str


PARAGRAPHS: tuple[Paragraph, ...] = (
    Paragraph(
        "p01",
        "Science",
        5,
        "Photosynthesis is the biochemical process through which green plants, algae and certain bacteria convert "
        "light energy into chemical energy. Chlorophyll molecules embedded in the thylakoid membranes absorb "
        "photons, and this energy drives the splitting of water molecules, releasing oxygen as a byproduct. The "
        "captured energy is subsequently used to fix atmospheric carbon dioxide into glucose, which the organism "
        "stores or consumes to sustain its growth and metabolism.",
    ),
    Paragraph(
        "p02",
        "Science",
        6,
        "Plate tectonics describes the large-scale motion of the rigid segments that make up the Earth's "
        "lithosphere. These plates float on the partially molten asthenosphere and drift a few centimetres each "
        "year, driven by convection currents in the mantle. Where plates collide, mountain ranges and deep ocean "
        "trenches form; where they separate, magma rises to create new crust; and where they slide past one "
        "another, accumulated stress is released as earthquakes.",
    ),
    Paragraph(
        "p03",
        "Biology",
        7,
        "The human immune system comprises an intricate network of cells, tissues and organs that collectively "
        "defend the body against pathogenic microorganisms. Innate immunity provides an immediate but "
        "non-specific response, whereas adaptive immunity develops more slowly and targets particular antigens. "
        "Following an infection or vaccination, memory lymphocytes persist for years, enabling the body to mount "
        "a considerably faster and more vigorous response upon subsequent exposure to the same pathogen.",
    ),
    Paragraph(
        "p04",
        "History",
        6,
        "The construction of the transcontinental railroad, completed in 1869, fundamentally transformed the "
        "economic and demographic landscape of the United States. Thousands of labourers, many of them Chinese "
        "and Irish immigrants, endured perilous conditions to lay track across deserts and mountain passes. Upon "
        "its completion, a journey that had previously required several months by wagon could be accomplished in "
        "approximately one week, accelerating westward settlement and commerce.",
    ),
    Paragraph(
        "p05",
        "History",
        5,
        "The Great Wall of China is not a single continuous structure but a series of fortifications erected by "
        "successive dynasties over roughly two thousand years. Its principal purpose was to impede raids by "
        "nomadic groups from the northern steppes and to regulate trade along the frontier. Although popular "
        "belief holds that it is visible from space with the naked eye, astronauts have consistently reported "
        "that it is extremely difficult to distinguish.",
    ),
    Paragraph(
        "p06",
        "Geography",
        4,
        "The Amazon rainforest, which spans approximately 5.5 million square kilometres across nine South "
        "American nations, harbours an extraordinary proportion of the planet's terrestrial biodiversity. Its "
        "dense canopy regulates regional precipitation by releasing enormous quantities of water vapour through "
        "transpiration. Deforestation for agriculture and logging has diminished its extent substantially in "
        "recent decades, raising concerns that portions of the forest could transition irreversibly into "
        "savanna.",
    ),
    Paragraph(
        "p07",
        "Economics",
        8,
        "Inflation denotes a sustained increase in the general price level of goods and services within an "
        "economy over a period of time. When inflation accelerates, each unit of currency purchases fewer goods, "
        "thereby eroding the real value of savings and fixed incomes. Central banks typically attempt to contain "
        "inflation by raising interest rates, which increases the cost of borrowing and consequently dampens "
        "consumer spending and business investment.",
    ),
    Paragraph(
        "p08",
        "Physics",
        7,
        "Newton's third law of motion states that for every action there is an equal and opposite reaction. When "
        "a rocket expels exhaust gases downward at high velocity, the gases exert a corresponding upward force "
        "on the rocket, propelling it into the sky. This principle operates irrespective of the surrounding "
        "medium, which explains why rockets can accelerate in the vacuum of space where there is no air against "
        "which to push.",
    ),
    Paragraph(
        "p09",
        "Chemistry",
        8,
        "An acid is a substance that donates hydrogen ions when dissolved in water, whereas a base accepts them. "
        "The pH scale, which ranges from zero to fourteen, quantifies the acidity or alkalinity of a solution, "
        "with seven representing neutrality. Because the scale is logarithmic, a solution with a pH of three is "
        "ten times more acidic than one with a pH of four and one hundred times more acidic than one with a pH "
        "of five.",
    ),
    Paragraph(
        "p10",
        "Astronomy",
        5,
        "A solar eclipse occurs when the Moon passes directly between the Earth and the Sun, temporarily "
        "obscuring the Sun's light for observers situated within the Moon's shadow. During a total eclipse, the "
        "sky darkens dramatically and the Sun's outer atmosphere, known as the corona, becomes visible as a "
        "shimmering halo. Because the Moon's shadow is comparatively narrow, any particular location experiences "
        "a total eclipse only rarely.",
    ),
    Paragraph(
        "p11",
        "Health",
        4,
        "Regular physical activity confers numerous benefits upon both physical and mental health. Engaging in "
        "moderate exercise for at least thirty minutes on most days strengthens the cardiovascular system, "
        "improves muscular endurance and assists in maintaining a healthy body weight. Furthermore, exercise "
        "stimulates the release of endorphins, chemicals in the brain that alleviate stress and contribute to an "
        "improved mood and more restful sleep.",
    ),
    Paragraph(
        "p12",
        "Civics",
        7,
        "The principle of separation of powers divides governmental authority among three distinct branches: the "
        "legislative, which enacts laws; the executive, which implements and enforces them; and the judicial, "
        "which interprets them and adjudicates disputes. This arrangement is intended to prevent the "
        "concentration of power in any single institution, since each branch possesses mechanisms to restrain "
        "the others, a system commonly referred to as checks and balances.",
    ),
    Paragraph(
        "p13",
        "Literature",
        8,
        "A metaphor is a figure of speech that describes an object or action by asserting that it is something "
        "it literally is not, thereby illuminating a resemblance between the two. Unlike a simile, which makes "
        "the comparison explicit through words such as 'like' or 'as', a metaphor implies the comparison "
        "directly. Authors employ metaphors to evoke vivid imagery, convey complex emotions succinctly and invite "
        "readers to perceive familiar things from an unexpected perspective.",
    ),
    Paragraph(
        "p14",
        "Technology",
        6,
        "The internet is a global system of interconnected computer networks that communicate using a "
        "standardised set of protocols. Information transmitted across it is divided into small units called "
        "packets, each of which may travel along a different route before being reassembled at its destination. "
        "This decentralised architecture, originally developed for military research, renders the network "
        "remarkably resilient, since the failure of any individual connection seldom interrupts communication "
        "as a whole.",
    ),
    Paragraph(
        "p15",
        "Science",
        3,
        "The water cycle describes the continuous circulation of water between the Earth's surface and its "
        "atmosphere. Solar radiation causes water in oceans, lakes and rivers to evaporate, forming vapour that "
        "ascends and cools until it condenses into clouds. When the droplets within the clouds coalesce and "
        "become sufficiently heavy, they descend as precipitation, replenishing bodies of water and groundwater "
        "reserves before the cycle recommences.",
    ),
    Paragraph(
        "p16",
        "Biology",
        6,
        "Bees play an indispensable role in agricultural ecosystems through the process of pollination. As they "
        "gather nectar from flowers, pollen grains adhere to the fine hairs on their bodies and are transferred "
        "to other blossoms, enabling fertilisation and the subsequent development of fruits and seeds. A "
        "substantial share of the crops consumed by humans depends, at least partially, upon animal "
        "pollinators, which is why declining bee populations alarm scientists and farmers alike.",
    ),
    Paragraph(
        "p17",
        "History",
        8,
        "The invention of the movable-type printing press by Johannes Gutenberg around 1440 precipitated a "
        "profound transformation in the dissemination of knowledge throughout Europe. Books, which had "
        "previously been copied laboriously by hand, could now be reproduced rapidly and at a fraction of the "
        "cost. The resulting proliferation of printed material fostered rising literacy, facilitated the spread "
        "of scientific ideas and contributed significantly to the religious upheavals of the Reformation.",
    ),
    Paragraph(
        "p18",
        "Environment",
        5,
        "Recycling involves collecting discarded materials such as paper, glass, aluminium and certain plastics "
        "and processing them so that they can be manufactured into new products. This practice conserves finite "
        "natural resources, reduces the energy required for production and diminishes the volume of waste "
        "consigned to landfills. Nevertheless, its effectiveness depends heavily on residents sorting materials "
        "correctly, because contaminated batches are frequently rejected by processing facilities.",
    ),
    Paragraph(
        "p19",
        "Mathematics",
        6,
        "A prime number is a natural number greater than one whose only positive divisors are one and itself; "
        "examples include two, three, five and seven. Every natural number greater than one can be expressed "
        "uniquely as a product of primes, a result known as the fundamental theorem of arithmetic. Although "
        "mathematicians proved more than two thousand years ago that there are infinitely many primes, no simple "
        "formula predicts exactly where each one occurs.",
    ),
    Paragraph(
        "p20",
        "Science",
        4,
        "Volcanoes form where molten rock, referred to as magma, ascends from deep within the Earth and erupts "
        "through openings in the crust. Some eruptions are explosive, ejecting ash and fragments of rock high "
        "into the atmosphere, while others release comparatively fluid lava that flows steadily across the "
        "landscape. Although eruptions can devastate nearby communities, the volcanic soils they leave behind "
        "are often exceptionally fertile and support productive agriculture.",
    ),
    Paragraph(
        "p21",
        "Music",
        5,
        "An orchestra is a large instrumental ensemble that conventionally comprises four principal sections: "
        "strings, woodwinds, brass and percussion. The conductor, positioned before the musicians, coordinates "
        "the tempo, dynamics and entrances of each section by means of gestures and a slender baton. Composers "
        "exploit the distinctive timbre of each instrument family to create contrasting textures, ranging from "
        "delicate solo passages to thunderous climaxes in which every performer participates.",
    ),
    Paragraph(
        "p22",
        "Geography",
        7,
        "Deserts are regions that receive less than approximately 250 millimetres of precipitation annually, and "
        "contrary to common assumption, not all of them are hot. Antarctica, covered by an immense ice sheet, "
        "qualifies as the largest desert on Earth because so little snow falls there. Organisms inhabiting arid "
        "environments exhibit remarkable adaptations, such as succulent tissues that store water and nocturnal "
        "habits that enable animals to avoid the intense daytime heat.",
    ),
    Paragraph(
        "p23",
        "Health",
        6,
        "Sleep is an essential physiological state during which the body repairs tissues, consolidates memories "
        "and regulates hormones that govern appetite and growth. Adolescents generally require between eight and "
        "ten hours of sleep each night, yet many obtain considerably less because of early school schedules and "
        "the use of electronic devices late in the evening. Chronic sleep deprivation impairs concentration, "
        "weakens the immune system and increases the risk of accidents.",
    ),
    Paragraph(
        "p24",
        "Technology",
        8,
        "Artificial intelligence refers to computer systems designed to perform tasks that ordinarily require "
        "human cognition, such as recognising speech, translating languages and identifying objects in images. "
        "Many contemporary systems rely on machine learning, whereby algorithms detect statistical patterns in "
        "extensive collections of example data rather than following explicitly programmed rules. Consequently, "
        "their performance depends substantially on the quantity, quality and representativeness of the data "
        "used to train them.",
    ),
)

MORE_PARAGRAPHS: tuple[Paragraph, ...] = (
    Paragraph(
        "q01",
        "Biology",
        6,
        "Vaccines prepare the immune system to recognise a pathogen without the person first suffering the "
        "disease. A vaccine contains a weakened or inactivated form of the microbe, or merely a fragment of one of "
        "its proteins, which the body identifies as foreign. White blood cells respond by manufacturing antibodies "
        "and by retaining memory cells, so that a subsequent encounter with the genuine pathogen provokes a rapid "
        "and decisive defence.",
    ),
    Paragraph(
        "q02",
        "Mathematics",
        5,
        "A prime number is a whole number greater than one whose only divisors are one and the number itself. "
        "Consequently, two, three, five and seven are prime, whereas nine is not, because it can be divided evenly "
        "by three. Every whole number larger than one can be expressed as a product of primes in exactly one way, "
        "a result that mathematicians regard as the fundamental theorem of arithmetic.",
    ),
    Paragraph(
        "q03",
        "Literature",
        7,
        "A metaphor is a figure of speech that describes one thing by asserting that it is another, without using "
        "comparative words such as 'like' or 'as'. When a poet writes that time is a thief, the reader understands "
        "that time quietly steals moments from our lives. Writers employ metaphors to make abstract ideas concrete "
        "and to evoke emotions that literal descriptions frequently fail to convey.",
    ),
    Paragraph(
        "q04",
        "Earth Science",
        8,
        "The nitrogen cycle is the sequence of processes by which nitrogen circulates between the atmosphere, the "
        "soil and living organisms. Although nitrogen gas constitutes roughly 78 percent of the air, most organisms "
        "cannot utilise it directly. Specialised bacteria in the soil and in the root nodules of legumes convert it "
        "into ammonia and nitrates, which plants absorb; other bacteria eventually return the nitrogen to the "
        "atmosphere through denitrification.",
    ),
    Paragraph(
        "q05",
        "Physics",
        4,
        "Sound is a vibration that travels through a medium such as air, water or a solid material. When a guitar "
        "string is plucked, it oscillates rapidly and pushes neighbouring air particles, which in turn push the "
        "particles beside them, transmitting a wave to the listener's ear. Sound cannot propagate through the "
        "vacuum of space, because there are no particles there to carry the vibration.",
    ),
    Paragraph(
        "q06",
        "History",
        9,
        "The printing press devised by Johannes Gutenberg around 1440 combined movable metal type, oil-based ink and "
        "a modified wine press into a system capable of producing books with unprecedented speed. Within fifty "
        "years, presses operated in more than two hundred European cities, and millions of volumes had been "
        "printed. The resulting circulation of texts accelerated the Reformation, standardised vernacular "
        "languages and laid foundations for the Scientific Revolution.",
    ),
    Paragraph(
        "q07",
        "Economics",
        10,
        "Inflation denotes a sustained increase in the general price level of goods and services within an "
        "economy, which correspondingly erodes the purchasing power of money. Moderate inflation is commonly "
        "regarded as compatible with economic growth, and many central banks target an annual rate of about two "
        "percent. Hyperinflation, by contrast, can devastate savings and destabilise governments, as Germany "
        "experienced in 1923 when prices doubled within days.",
    ),
    Paragraph(
        "q08",
        "Chemistry",
        6,
        "Water is a compound composed of two hydrogen atoms covalently bonded to a single oxygen atom. Because the "
        "oxygen atom attracts the shared electrons more strongly, the molecule carries a slight negative charge at "
        "one end and a slight positive charge at the other. This polarity explains why water dissolves so many "
        "substances and why its molecules cling together, producing surface tension.",
    ),
    Paragraph(
        "q09",
        "Astronomy",
        3,
        "The Moon is Earth's only natural satellite, orbiting our planet at an average distance of approximately "
        "384,000 kilometres. It does not produce light of its own; instead, it reflects sunlight, and its apparent "
        "shape changes over a cycle of about twenty-nine days as different portions of its illuminated surface "
        "become visible from Earth. These changing shapes are called phases.",
    ),
    Paragraph(
        "q10",
        "Civics",
        9,
        "The separation of powers divides governmental authority among distinct branches so that no single "
        "institution can accumulate unchecked control. In the United States, Congress enacts legislation, the "
        "President executes it, and the federal courts interpret it. Each branch possesses mechanisms to restrain "
        "the others: the President may veto bills, Congress may override a veto with a two-thirds majority, and "
        "courts may invalidate unconstitutional laws.",
    ),
    Paragraph(
        "q11",
        "Health",
        5,
        "Sleep is an active biological state during which the body repairs tissues and the brain consolidates "
        "memories formed during the day. Children between six and twelve years old generally require nine to "
        "twelve hours of sleep each night. Persistent sleep deprivation impairs concentration, weakens the immune "
        "response and increases the likelihood of accidents, so establishing a regular bedtime is strongly "
        "recommended.",
    ),
    Paragraph(
        "q12",
        "Art",
        7,
        "Perspective is a drawing technique that creates the illusion of depth on a flat surface. Renaissance "
        "artists such as Filippo Brunelleschi formalised linear perspective in the fifteenth century by making "
        "parallel lines converge towards a single vanishing point on the horizon. Objects positioned farther from "
        "the viewer are depicted progressively smaller, which persuades the eye that the painted scene extends "
        "into the distance.",
    ),
    Paragraph(
        "q13",
        "Computing",
        8,
        "An algorithm is a finite sequence of unambiguous instructions for solving a problem or accomplishing a "
        "task. A recipe for baking bread is an informal algorithm, whereas a computer program expresses algorithms "
        "in a precise language that a machine can execute. Computer scientists compare algorithms by analysing how "
        "their running time and memory consumption grow as the quantity of input data increases.",
    ),
    Paragraph(
        "q14",
        "Geography",
        4,
        "The Nile is among the longest rivers in the world, flowing northward for about 6,650 kilometres through "
        "eleven African countries before emptying into the Mediterranean Sea. For thousands of years, its annual "
        "floods deposited fertile silt along its banks, enabling ancient Egyptian farmers to cultivate wheat and "
        "barley in an otherwise arid desert landscape.",
    ),
    Paragraph(
        "q15",
        "Psychology",
        10,
        "Confirmation bias is the tendency to seek out, interpret and remember information in a manner that "
        "corroborates one's existing beliefs while disregarding contradictory evidence. Experiments conducted by "
        "Peter Wason in the 1960s demonstrated that participants testing a hypothesis overwhelmingly searched for "
        "confirming instances rather than attempting to falsify it. The bias influences judgements in domains "
        "ranging from medicine to jurisprudence.",
    ),
    Paragraph(
        "q16",
        "Ecology",
        3,
        "A food chain shows how energy passes from one living thing to another when organisms are eaten. Grass "
        "captures energy from sunlight, a rabbit consumes the grass, and a fox subsequently consumes the rabbit. "
        "Only a small fraction of the energy at each level is transferred to the next, which explains why there "
        "are far fewer foxes than rabbits in a healthy meadow.",
    ),
    Paragraph(
        "q17",
        "Engineering",
        9,
        "Suspension bridges carry their decks on vertical cables hung from two massive main cables, which are "
        "draped over tall towers and anchored firmly at each end. This arrangement transfers the load into tension "
        "in the cables and compression in the towers, permitting spans exceeding one kilometre. The Golden Gate "
        "Bridge, opened in 1937, held the record for the longest main span for almost three decades.",
    ),
    Paragraph(
        "q18",
        "Music",
        6,
        "An orchestra groups its instruments into four families: strings, woodwinds, brass and percussion. The "
        "string section, which includes violins, violas, cellos and double basses, is usually the largest and "
        "sits nearest the conductor. Each family produces sound differently, whether through vibrating strings, "
        "columns of air or struck surfaces, and composers blend these timbres to create contrasting moods.",
    ),
)
"""Further paragraphs for the quality checks (targets 3-10), written for this project like the first set."""

ALL_PARAGRAPHS: tuple[Paragraph, ...] = PARAGRAPHS + MORE_PARAGRAPHS
"""Every paragraph of the benchmark set, in a fixed order."""


def paragraph(pid: str) -> Paragraph:
    """The benchmark paragraph with this id."""
    return next(p for p in ALL_PARAGRAPHS if p.pid == pid)


@dataclass(frozen=True)
class Document:
    """A text of several paragraphs (blank lines between them) and the request it comes with."""

    did: str
    subject: str
    grade_level: int
    paragraphs: tuple[str, ...]

    @property
    def text(self) -> str:
        """The document as a user sends it."""
        return "\n\n".join(self.paragraphs)


DOCUMENTS: tuple[Document, ...] = (
    Document(
        "d01",
        "Earth Science",
        5,
        (
            "Earthquakes occur when rocks deep underground suddenly break or slip along a fault, releasing energy "
            "that has accumulated over many years. This energy travels outward as seismic waves, which shake the "
            "ground and any structures built upon it.",
            "Scientists measure earthquakes with instruments called seismometers, which record the vibrations of "
            "the ground. The magnitude of an earthquake describes how much energy it released, and each whole "
            "number on the scale represents roughly thirty-two times more energy than the number below it.",
            "Most earthquakes happen near the edges of tectonic plates, particularly around the Pacific Ocean, a "
            "zone often called the Ring of Fire. Countries located there, such as Japan and Chile, experience "
            "frequent tremors and have developed strict building codes.",
            "Although earthquakes cannot be predicted precisely, communities can prepare for them. Securing heavy "
            "furniture, practising evacuation drills and constructing flexible buildings substantially reduce the "
            "number of injuries when the ground begins to shake.",
        ),
    ),
    Document(
        "d02",
        "History",
        7,
        (
            "The ancient city of Rome, according to tradition, was founded in 753 BC on hills beside the Tiber "
            "River. Over several centuries it expanded from a modest settlement into the capital of an empire that "
            "encircled the Mediterranean Sea.",
            "Roman engineers constructed an extensive network of roads, bridges and aqueducts. The aqueducts carried "
            "fresh water from distant springs into the city by means of a gentle, continuous slope, supplying public "
            "baths, fountains and private homes.",
            "Latin, the language of the Romans, became the foundation of several modern languages, including "
            "Italian, Spanish, French, Portuguese and Romanian. Many English words, particularly in science and law, "
            "also derive from Latin roots.",
            "The Western Roman Empire collapsed in AD 476, weakened by economic difficulties, political instability "
            "and repeated invasions. The eastern half, governed from Constantinople, endured for nearly another "
            "thousand years.",
        ),
    ),
    Document(
        "d03",
        "Science",
        4,
        (
            "The water cycle describes how water continually moves between the oceans, the atmosphere and the land. "
            "Heat from the Sun causes water at the surface of seas, lakes and rivers to evaporate, turning it into "
            "an invisible gas called water vapour.",
            "As warm, moist air rises, it cools, and the vapour condenses into tiny droplets that gather around "
            "particles of dust. Billions of these droplets together form the clouds that drift across the sky.",
            "When the droplets in a cloud combine and grow too heavy to remain aloft, they fall as precipitation: "
            "rain, snow, sleet or hail, depending on the temperature of the air they pass through.",
            "Some of the fallen water soaks into the ground and is stored as groundwater, while the rest flows "
            "over the surface into streams and rivers. Eventually most of it returns to the ocean, where the "
            "cycle begins again.",
        ),
    ),
)
"""Multi-paragraph texts for the document path: each comes back as as many paragraphs as it has."""
