"""Model construction and loading: the embedded tiny Qwen2 model and HF loading helpers."""
