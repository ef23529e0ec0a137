"""The studio page: components, their arrangement, and which handler each event calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from ui import text
from ui.handlers import CONFIRM_OUTPUTS, HISTORY_OUTPUTS, TAKE_OUTPUTS, TRAJECTORY_OUTPUTS, Handlers
from uvigu.studio import ModelDefaults, Studio
from uvigu.timeline import DEFAULT_EVERY_S

SESSION_STORAGE_KEY = "uvigu-studio-session"
MODEL = {"concurrency_id": "model", "concurrency_limit": 1}  # every event that runs the model
QUICK = {"queue": False, "show_progress": "hidden"}  # cheap events that must not wait
MAX_TAKES_PER_CLICK = 4  # variations of one prompt or edit, made in one click


def build_demo(studio: Studio, gpu: Callable[[Callable], Callable] | None = None) -> gr.Blocks:
    """The studio as a Gradio app (not launched). ``gpu`` wraps model-running handlers
    (``spaces.GPU`` on Hugging Face Spaces); launch with ``theme``/``css`` from
    :func:`launch_options`."""
    gpu = gpu or (lambda fn: fn)
    handlers = Handlers(studio)
    settings, defaults = studio.settings, studio.model_defaults()
    ui: dict[str, Any] = {}

    with gr.Blocks(title="Uni-ViGU Studio", delete_cache=(3600, 24 * 3600)) as demo:
        token = gr.BrowserState(None, storage_key=SESSION_STORAGE_KEY, secret=studio.browser_secret())
        gr.Markdown(text.INTRO)
        with gr.Tabs():
            with gr.Tab("Studio", id="studio"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=320):
                        prompt = gr.Textbox(
                            label="Prompt", lines=2, max_length=settings.max_prompt_chars,
                            placeholder="a red circle moving right", elem_id="prompt",
                        )
                        prompt_warning = gr.Markdown(elem_id="prompt-warning")
                        mode = gr.Radio(
                            [("Generate, then caption", "generate"),
                             ("Joint: clip and caption in one pass", "joint")],
                            value="generate", label="Mode",
                        )
                        with gr.Row():
                            seed = gr.Number(
                                label="Seed", value=0, precision=0, minimum=0,
                                maximum=settings.max_seed, elem_id="seed",
                            )
                            randomize = gr.Checkbox(label="Randomize seed", value=True)
                        with gr.Accordion("Settings", open=False):
                            steps = gr.Slider(
                                settings.min_steps, settings.max_steps, step=1,
                                value=min(defaults.num_inference_steps, settings.max_steps),
                                label="Denoising steps",
                            )
                            guidance = gr.Slider(
                                0.0, settings.max_guidance, step=0.5,
                                value=min(defaults.guidance_scale, settings.max_guidance),
                                label="Guidance (how closely to follow the prompt)",
                            )
                            count = gr.Slider(
                                1, min(MAX_TAKES_PER_CLICK, settings.max_jobs_per_session), step=1, value=1,
                                label="Takes per click (Generate and Regenerate; seeds one apart)",
                                elem_id="count",
                            )
                            best_of = gr.Slider(
                                1, settings.max_best_of, step=1, value=1,
                                label="Tries per take: the model captions each try and keeps the clip whose "
                                      "caption matches the prompt (or the edited caption) best; each try costs up to "
                                      "a clip and a caption (not in Joint mode)",
                                elem_id="best-of",
                            )
                            expert = gr.Checkbox(
                                value=True, label="High-noise expert",
                                info="The model's high-noise expert makes the first denoising step from pure noise "
                                     "(Generate, or Regenerate at strength 1 without Keep the rest) and draws the "
                                     "background the prompt names. Untick to make every step with the model alone.",
                                visible=defaults.high_noise_expert, elem_id="high-noise-expert",
                            )
                            moving = gr.Checkbox(
                                value=True, label="Moving noise",
                                info=_moving_noise_info(defaults),
                                visible=defaults.motion_noise > 0, elem_id="moving-noise",
                            )
                        with gr.Row():
                            generate_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn")
                            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn")
                        with gr.Accordion("What this model knows", open=False, elem_id="model-help"):
                            gr.Markdown(text.model_help(
                                defaults.num_frames, defaults.fps, defaults.width, defaults.height,
                                defaults.max_text_tokens, studio.known_words(), defaults.runs_on,
                                studio.prompt_guide(),
                            ))
                        gr.Examples(
                            [[p] for p in text.EXAMPLE_PROMPTS], inputs=[prompt], cache_examples=False,
                            label="Try",
                        )
                    with gr.Column(scale=1, min_width=320):
                        ui["take_title"] = gr.Markdown(elem_id="take-title")
                        with gr.Row(equal_height=True):
                            ui["before"] = gr.Video(
                                label="Before", interactive=False, loop=True, autoplay=True, visible=False,
                                elem_id="before-video", height=320,
                            )
                            ui["video"] = gr.Video(
                                label="Clip", interactive=False, loop=True, autoplay=True,
                                buttons=["download"], elem_id="take-video", height=320,
                            )
                        ui["caption"] = gr.Textbox(
                            label="What the model says the clip shows", interactive=False,
                            elem_id="model-caption", buttons=["copy"],
                        )
                        ui["read_back"] = gr.Markdown(elem_id="take-read-back")
                        ask_btn = gr.Button(
                            "Ask for what it missed (into the edited caption below)", size="sm",
                            elem_id="ask-missed-btn",
                        )
                        ui["unknown"] = gr.Markdown(elem_id="take-warning")
                        ui["critique"] = gr.Textbox(
                            label="Your critique (saved with the take)", lines=2,
                            max_length=settings.max_critique_chars, elem_id="critique",
                        )
                        with gr.Row():
                            save_critique_btn = gr.Button("Save critique", size="sm", elem_id="save-critique-btn")
                            gif_btn = gr.Button("Save as GIF", size="sm", elem_id="gif-btn")
                            delete_take_btn = gr.Button("Delete take…", size="sm", elem_id="delete-take-btn")
                        gif_file = gr.File(label="GIF of the take", visible=False, elem_id="gif-file")
                        confirm_delete_take_btn, cancel_delete_take_btn = _confirmation(ui, "delete_take", "Delete",
                                                                                         "Keep it")
                        ui["delete_target"] = gr.State(None)
                        ui["edited"] = gr.Textbox(
                            label="Edited caption: the prompt for the next take", lines=2,
                            max_length=settings.max_prompt_chars, elem_id="edited-caption",
                        )
                        edited_warning = gr.Markdown(elem_id="edited-warning")
                        ui["diff"] = gr.HighlightedText(
                            label="Your changes", combine_adjacent=False, show_legend=False,
                            color_map={"+": "green", "-": "red"}, elem_id="caption-diff",
                        )
                        strength = gr.Slider(
                            settings.min_strength, settings.max_strength, step=0.05,
                            # Keep the rest starts ticked, so the slider starts at that edit's default.
                            value=min(max(defaults.keep_rest_strength, settings.min_strength), settings.max_strength),
                            label="Strength (how much of the previous clip to repaint)", elem_id="strength",
                        )
                        keep_rest = gr.Checkbox(
                            label="Keep the rest: change only what you edited (compares with the "
                                  "model's caption; about 2.5× slower; untick to redraw more freely)",
                            value=True, elem_id="keep-rest",
                        )
                        regenerate_btn = gr.Button(
                            "Regenerate with edits", variant="primary", elem_id="regenerate-btn"
                        )
                        ui["current"] = gr.State(None)
            with gr.Tab("History", id="history"):
                gr.Markdown(text.HISTORY_HELP)
                ui["gallery"] = gr.Gallery(
                    label="Takes", columns=6, height="auto", allow_preview=False,
                    elem_id="history-gallery",
                )
                with gr.Row():
                    with gr.Column():
                        export_btn = gr.Button("Export session (.zip)", elem_id="export-btn")
                        delete_all_btn = gr.Button("Delete all takes…", size="sm", elem_id="delete-all-btn")
                    export_file = gr.File(label="Session export", elem_id="export-file")
                    import_file = gr.File(
                        label="Import a session export (.zip)", file_types=[".zip"], type="filepath",
                        elem_id="import-file",
                    )
                confirm_delete_all_btn, cancel_delete_all_btn = _confirmation(ui, "delete_all", "Delete all", "Keep them")
                ui["timeline"] = gr.Markdown(elem_id="history-timeline")
            with gr.Tab("Understand", id="understand"):
                gr.Markdown(text.understand_help(
                    settings.max_upload_duration_s / 60, round(settings.max_upload_bytes / 2**20)
                ))
                with gr.Row():
                    upload = gr.Video(label="Your clip", sources=["upload"], elem_id="upload-video")
                    with gr.Column():
                        upload_start = gr.Number(
                            label="Start at (seconds into your clip)", value=0, minimum=0, elem_id="upload-start",
                            info=text.UPLOAD_START_INFO,
                        )
                        understand_btn = gr.Button("Caption this clip", variant="primary", elem_id="understand-btn")
                        understand_caption = gr.Textbox(
                            label="What the model says the clip shows", interactive=False,
                            elem_id="understand-caption",
                        )
                        understand_notes = gr.Markdown(elem_id="understand-notes")
                        understand_clip = gr.Video(
                            label="What the model read", interactive=False, loop=True, autoplay=True, height=192,
                            elem_id="understand-clip",
                        )
                        with gr.Row():
                            timeline_every = gr.Number(
                                label="A caption every (seconds)", value=DEFAULT_EVERY_S, minimum=0.5, maximum=60,
                                elem_id="timeline-every",
                            )
                            timeline_btn = gr.Button("Caption the whole clip as a timeline", elem_id="timeline-btn")
                        timeline_table = gr.Markdown(elem_id="understand-timeline")
                        timeline_srt = gr.File(label="The timeline as subtitles (.srt)", visible=False,
                                               elem_id="timeline-srt")
            with gr.Tab("Trajectory", id="trajectory"):
                gr.Markdown(text.TRAJECTORY_HELP)
                ui["traj_slider"] = gr.Slider(0, 1, value=0, step=1, label="Step", elem_id="traj-slider")
                ui["traj_info"] = gr.Markdown("No run yet.", elem_id="traj-info")
                with gr.Row():
                    ui["traj_video"] = gr.Video(
                        label="Clean-clip estimate", interactive=False, loop=True, autoplay=True,
                        elem_id="traj-video", height=256,
                    )
                    ui["traj_text"] = gr.Textbox(label="Text at this step", interactive=False, lines=3)
                traj_png_btn = gr.Button("Save every step as one picture (PNG)", size="sm", elem_id="traj-png-btn")
                traj_png = gr.File(label="The steps as a picture", visible=False, elem_id="traj-png")

        # The named endpoints scripts call; their components are never shown.
        with gr.Column(visible=False):
            api_token = gr.State(None)
            api_prompt = gr.Textbox(label="prompt")
            api_seed = gr.Number(label="seed", value=-1, precision=0)
            api_steps = gr.Number(label="steps", value=defaults.num_inference_steps, precision=0)
            api_guidance = gr.Number(label="guidance", value=defaults.guidance_scale)
            api_strength = gr.Number(label="strength", value=None)
            api_source = gr.Textbox(label="source_prompt", value="")
            api_best_of = gr.Number(label="best_of", value=1, precision=0)
            api_start = gr.Number(label="start", value=0)
            api_expert = gr.Checkbox(label="high_noise_expert", value=True)
            api_moving = gr.Checkbox(label="moving_noise", value=True)
            api_video_in = gr.Video(label="video", sources=["upload"])
            api_video_out = gr.Video(label="clip")
            api_caption = gr.Textbox(label="caption")
            api_seed_out = gr.Number(label="seed", precision=0)
            api_generate_btn, api_caption_btn, api_edit_btn = gr.Button(), gr.Button(), gr.Button()

        take = [ui[name] for name in TAKE_OUTPUTS]
        history = [ui[name] for name in HISTORY_OUTPUTS]
        trajectory = [ui[name] for name in TRAJECTORY_OUTPUTS]
        confirms = [ui[name] for name in CONFIRM_OUTPUTS]
        private = {"api_visibility": "private"}

        demo.load(handlers.restore, [token], [token, *take, *history], **private)
        prompt.change(handlers.check_words, [prompt], [prompt_warning], trigger_mode="always_last", **QUICK, **private)
        gr.on(
            [generate_btn.click, prompt.submit], gpu(handlers.generate),
            [prompt, mode, seed, randomize, steps, guidance, token, count, best_of, expert, moving],
            [token, seed, *take, *history, *trajectory], api_name="ui_generate", **MODEL, **private,
        )
        regenerate_btn.click(
            gpu(handlers.regenerate),
            [ui["current"], ui["edited"], ui["critique"], strength, keep_rest, seed, randomize, steps, guidance,
             token, count, best_of, expert],
            [token, seed, *take, *history, *trajectory], api_name="ui_regenerate", **MODEL, **private,
        )
        understand_btn.click(
            gpu(handlers.understand), [upload, upload_start, token],
            [token, understand_caption, understand_notes, understand_clip, *take, *history, *trajectory],
            api_name="ui_understand", **MODEL, **private,
        )
        upload.change(
            handlers.upload_changed, [upload],
            [upload_start, understand_caption, understand_notes, understand_clip, timeline_table, timeline_srt],
            **QUICK, **private,
        )
        timeline_btn.click(
            gpu(handlers.understand_timeline), [upload, upload_start, timeline_every, token],
            [token, timeline_table, timeline_srt], api_name="ui_timeline", **MODEL, **private,
        )
        # Its own queue (not the model's), so it runs while a model event is running.
        stop_btn.click(handlers.stop, [token], None, show_progress="hidden", **private)
        save_critique_btn.click(handlers.save_critique, [ui["current"], ui["critique"], token], history, **private)
        gif_btn.click(handlers.gif, [ui["current"], token], [gif_file], **private)
        ask_btn.click(handlers.ask_for_misses, [ui["current"], token], [ui["edited"]], show_progress="hidden",
                      **private)
        keep_rest.change(handlers.keep_rest_strength, [keep_rest], [strength], **QUICK, **private)
        ui["edited"].change(handlers.diff, [ui["caption"], ui["edited"]], [ui["diff"]], **QUICK, **private)
        ui["edited"].change(
            handlers.check_words, [ui["edited"]], [edited_warning], trigger_mode="always_last", **QUICK, **private
        )
        ui["gallery"].select(handlers.open_take, [token], take, **private)
        export_btn.click(handlers.export, [token], [export_file], **private)
        delete_take_btn.click(handlers.ask_delete_take, [ui["current"], token], confirms, **private)
        delete_all_btn.click(handlers.ask_delete_all, [token], confirms, **private)
        for cancel in (cancel_delete_take_btn, cancel_delete_all_btn):
            cancel.click(handlers.cancel_delete, None, confirms, **QUICK, **private)
        gr.on(
            [confirm_delete_take_btn.click, confirm_delete_all_btn.click], handlers.delete,
            [ui["delete_target"], ui["current"], token], [*take, *history, *trajectory, *confirms], **private,
        )
        import_file.upload(
            handlers.import_session, [import_file, token], [token, *take, *history, import_file], **private
        )
        ui["traj_slider"].release(handlers.trajectory_step, [ui["traj_slider"], token], trajectory, **private)
        traj_png_btn.click(handlers.trajectory_png, [token], [traj_png], **private)

        api_generate_btn.click(
            gpu(handlers.api_generate),
            [api_prompt, api_seed, api_steps, api_guidance, api_best_of, api_expert, api_moving, api_token],
            [api_video_out, api_caption, api_seed_out, api_token], api_name="generate", **MODEL,
        )
        api_caption_btn.click(
            gpu(handlers.api_caption), [api_video_in, api_start, api_token], [api_caption, api_token],
            api_name="caption", **MODEL,
        )
        api_edit_btn.click(
            gpu(handlers.api_edit),
            [api_video_in, api_prompt, api_strength, api_seed, api_source, api_best_of, api_start, api_expert,
             api_token],
            [api_video_out, api_caption, api_seed_out, api_token], api_name="edit", **MODEL,
        )
    demo.queue(max_size=settings.max_queue, default_concurrency_limit=1)
    return demo


def _moving_noise_info(defaults: ModelDefaults) -> str:
    """What the *Moving noise* box does, as the model's settings make it do it."""
    different_ways = [part for on, part in (
        (defaults.motion_noise_paths > 0, "the noise moves along each object's path"),
        (defaults.object_guidance > 0, "each object's own prompt guides its path"),
    ) if on]
    apart = ("; when they go different ways, a quick draft (a few more steps) finds where each object lands, and "
             f"from there {' and '.join(different_ways)}") if different_ways else ""
    plain = ", guided by the whole prompt alone" if defaults.object_guidance > 0 else ""
    return ("When every object of the prompt goes the same way, part of the starting noise moves that way" + apart +
            ". The clip more often moves as asked — and more often shows an object not asked for (Generate and "
            f"Joint; Regenerate starts from the take's clip). Untick to start from plain noise{plain}.")


def _confirmation(ui: dict[str, Any], name: str, yes: str, no: str) -> tuple[gr.Button, gr.Button]:
    """A hidden panel asking before ``name`` is done: ``ui[name + "_panel"]`` (id ``name-panel``, in
    dashes) holding the question ``ui[name + "_question"]`` and a row of the two buttons returned,
    the one that does it (id ``confirm-name-btn``) and the one that does not."""
    slug = name.replace("_", "-")
    ui[f"{name}_panel"] = gr.Column(visible=False, variant="panel", elem_id=f"{slug}-panel")
    with ui[f"{name}_panel"]:
        ui[f"{name}_question"] = gr.Markdown(padding=True)
        with gr.Row():
            confirm = gr.Button(yes, variant="stop", size="sm", elem_id=f"confirm-{slug}-btn")
            cancel = gr.Button(no, size="sm")
    return confirm, cancel


def launch_options() -> dict[str, Any]:
    """Look of the page; Gradio 6 takes these at ``launch()``."""
    return {"theme": gr.themes.Soft(), "css": text.CSS}
