# xaiboard: runs the demo and serves the dashboard on 0.0.0.0:8501 inside the container; the same image
# runs the explanation service (`xai-core explainer …`, docs/kserve/inferenceservice.yaml).
FROM python:3.11-slim

WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
# Pango: WeasyPrint's text layout, for the PDF report (`xai-core report --pdf`).
RUN apt-get update && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 \
 && rm -rf /var/lib/apt/lists/*
# The CPU build of torch 2.13.0; the pinned requirements keep pip from pulling a CUDA build.
COPY requirements.txt pyproject.toml setup.py README.md ./
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install -r requirements.txt
COPY xai_core ./xai_core
COPY app.py ./
COPY pages ./pages
COPY .streamlit ./.streamlit
RUN pip install --no-deps -e . && xai-core demo --limit 64 --out summaries/demo --quiet

EXPOSE 8501
# Inside the container the server must listen on all interfaces so the published port works
# (this flag overrides .streamlit/config.toml's 127.0.0.1; publish the port on the host's
# loopback, `docker run -p 127.0.0.1:8501:8501`, unless a proxy guards it).
CMD ["xai-core", "serve", "--logdir", "summaries", "--host", "0.0.0.0", "--port", "8501"]
