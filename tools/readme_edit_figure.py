#!/usr/bin/python3
"""readme_edit_figure.py - the README's picture of the main command: the
photo's projection, the scribble over the projection, the edited result, side
by side, each scaled to 192 px (nearest neighbour, so pixels stay visible).
The photo itself is left out: it is ../shared data, which the repository
does not carry.

    /usr/bin/python3 tools/readme_edit_figure.py out/edit examples/scribble_blue_eyes.png \
        docs/images/readme_edit.png

Reads projection.png and result.png from the `ganedit edit` output folder;
the scribble's alpha channel is its mask."""
import sys

from PIL import Image

SIDE, GAP = 192, 10


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    out_dir, scribble_path, dst = sys.argv[1:]
    proj = Image.open(f"{out_dir}/projection.png").convert("RGB")
    result = Image.open(f"{out_dir}/result.png").convert("RGB")
    scribble = Image.open(scribble_path).convert("RGBA").resize(proj.size, Image.NEAREST)
    over = proj.convert("RGBA")
    over.alpha_composite(scribble)
    panels = [proj, over.convert("RGB"), result]
    fig = Image.new("RGB", (3 * SIDE + 2 * GAP, SIDE), (255, 255, 255))
    for i, p in enumerate(panels):
        fig.paste(p.resize((SIDE, SIDE), Image.NEAREST), (i * (SIDE + GAP), 0))
    fig.save(dst)


if __name__ == "__main__":
    main()
