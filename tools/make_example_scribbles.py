"""make_example_scribbles.py - draws the example scribbles shipped in examples/.

RGBA 64x64 PNGs: the colour is the scribble, the alpha is the mask (as the
course's sketches). Run with /usr/bin/python3 (needs python3-pil).
"""
from PIL import Image, ImageDraw

def scribble(path, shapes):
    im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    for kind, box, colour in shapes:
        getattr(d, kind)(box, fill=colour + (255,))
    im.save(path)

# bright blue eyes and a pink nose
scribble("examples/scribble_blue_eyes.png", [
    ("ellipse", (14, 24, 26, 32), (40, 120, 230)),
    ("ellipse", (38, 24, 50, 32), (40, 120, 230)),
    ("polygon", [(28, 38), (36, 38), (32, 43)], (235, 140, 160)),
])
# a white blaze on the forehead
scribble("examples/scribble_white_blaze.png", [
    ("rectangle", (26, 4, 38, 22), (245, 245, 245)),
])
