"""python -m red_vllm [vllm serve arguments]: see red_vllm's docstring."""

from red_vllm.launcher import main

main()
