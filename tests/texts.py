"""Texts several test layers send: one definition each."""

DOCUMENT = "\n\n".join(
    [
        "The Moon is Earth's only natural satellite. It orbits our planet at an average distance of about "
        "384,000 kilometres and reflects the light of the Sun.",
        "Volcanoes form where molten rock from deep inside the Earth reaches the surface. When pressure builds, "
        "lava, ash and gas can erupt with great force.",
        "Honeybees live in colonies ruled by a single queen. Worker bees gather nectar from flowers and turn it "
        "into honey, which feeds the colony through the winter.",
        "A thermometer measures temperature. In many thermometers a liquid expands when it is heated and rises "
        "inside a narrow glass tube marked with a scale.",
    ]
)
"""A four-paragraph document, one subject per paragraph."""
