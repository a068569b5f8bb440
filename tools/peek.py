"""Execute one notebook, print its text outputs and save its figures as PNGs (for authors).

    WORKBOOK_STATIC=1 python tools/peek.py chapters/NN-x/nb.ipynb /tmp/out   # then look at /tmp/out/*.png
"""
import sys, os, time, base64, nbformat
from nbclient import NotebookClient
p = sys.argv[1]; out = sys.argv[2]
os.makedirs(out, exist_ok=True)
nb = nbformat.read(p, as_version=4)
t = time.time()
try:
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(p)}}).execute()
finally:
    print("seconds", round(time.time() - t, 1))
    k = 0
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code": continue
        for o in c.outputs:
            if o.get("output_type") == "stream": print(f"[{i}]", o["text"][-1500:])
            if o.get("output_type") == "error": print(f"[{i}] ERROR", "\n".join(o["traceback"])[-3000:])
            d = o.get("data", {})
            if "image/png" in d:
                open(f"{out}/cell{i:02d}_{k}.png", "wb").write(base64.b64decode(d["image/png"])); k += 1
            elif "text/plain" in d: print(f"[{i}]", d["text/plain"][:500])
    nbformat.write(nb, f"{out}/executed.ipynb")
