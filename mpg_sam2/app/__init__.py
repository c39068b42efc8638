"""Everything the Gradio app (app.py) does besides laying out widgets."""
