set -x
cd /work/refbench
venv/bin/python bench_ref.py decode --dtype bf16 --threads 2 --prompt-len 903 --gen 32 --prefill-logits last > /work/team/ref.jsonl 2>/work/team/ref.err
tail -1 /work/team/ref.jsonl >> /dev/null
cat /work/team/ref-vision.jsonl >> /work/team/ref.jsonl
cd /work/main
for q in none q8 q4; do /usr/bin/time -f "  [wall %e s, max RSS %M KiB]" /work/bin/docseek-amx3 bench decode --model /work/ckpt/ocr1 --device cpu --dtype bf16 --quant $q --prompt-tokens 903 --new-tokens 32 --reference /work/team/ref.jsonl; done
/work/bin/docseek-amx3 bench encode --model /work/ckpt/ocr1 --device cpu --dtype bf16 --modes base,gundam --image /work/refbench/page_a4_synthetic.png --reference /work/team/ref.jsonl
DOCSEEK_AMX=off /work/bin/docseek-amx3 bench encode --model /work/ckpt/ocr1 --device cpu --dtype bf16 --modes gundam --image /work/refbench/page_a4_synthetic.png --reference /work/team/ref.jsonl
