"""Write a pre-resized copy of an ImageFolder dataset: `python scripts/resize_images.py SRC DST --size 256`."""

from roadmap.data.prepare import main

if __name__ == "__main__":
    main()
