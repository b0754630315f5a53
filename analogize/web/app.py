"""`analogize serve`: the web page over the same `Edit` surface as the command line.

Four screens. Teach: drop before/after images (or a zip), pick a method and preset, learn with a
live progress bar and loss curve, cancel, resume, download the edit file. Apply: drop photos,
pick an edit learned here or upload one, set the strength, optionally paint where the edit acts,
compare before and after with a slider, download one result or all of them as a zip. Two exemplar
screens: PIXELS — a photo, an exemplar and a painted map, edited again and again with its history;
Paint by Example — a photo, a painted region and an exemplar of what to paint there.
Apply and the exemplar screens show a bar of the request's work (gr.Progress): photos done,
denoising steps taken.

The page holds no state of its own: every refresh asks `Jobs` (jobs.py) what the newest training
is doing, so a reload, or a second tab, shows the same job. Errors in what the user gave become a
one-line message on the page (`gr.Error`), never a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves this machine

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..errors import AnalogizeError  # noqa: E402
from ..methods import DEFAULT_METHOD, REGISTRY  # noqa: E402
from .auth import password_check  # noqa: E402
from .jobs import RESULTS_ZIP, Jobs, TrainingStatus  # noqa: E402

REFRESH_SECONDS = 1.0
PAINT_COLOUR = "#ff2d55"
"""Half-transparent strokes, so the photo shows through where the edit will act."""
LOSS_COLUMNS_SKIPPED = ("step", "seconds", "samples_per_second")


def method_note(name: str) -> str:
    method = REGISTRY[name]
    return f"**{name}**: {method.summary}. Needs: {method.needs}."


def status_markdown(status: TrainingStatus | None) -> str:
    if status is None:
        return "No training yet. Drop pairs and press **Learn**."
    preset = f" ({status.preset})" if status.preset else ""
    line = f"**{status.state}** · {status.method}{preset} · step {status.step} of {status.total_steps} · job `{status.job}`"
    if status.message and status.state in ("failed", "done"):
        line += f"\n\n{status.message}"
    if status.state in ("cancelled", "stopped"):
        line += "\n\nPress **Resume** to continue from the last checkpoint."
    return line


def progress_html(status: TrainingStatus | None) -> str:
    if status is None or not status.total_steps:
        return ""
    return (f'<progress id="training-progress" value="{status.step}" max="{status.total_steps}" '
            f'style="width:100%"></progress>')


def loss_frame(status: TrainingStatus | None) -> pd.DataFrame:
    """Long format for the line plot: one row per (step, loss term)."""
    rows = [
        {"step": entry["step"], "loss": name, "value": value}
        for entry in (status.losses if status else [])
        for name, value in entry.items()
        if name not in LOSS_COLUMNS_SKIPPED and not name.startswith("lr")
    ]
    return pd.DataFrame(rows, columns=["step", "loss", "value"])


def strength_map_of(painted: dict | None) -> np.ndarray | None:
    """Where the user painted, as a (H, W) map in [0, 1]: 1 under the strokes, soft at their
    anti-aliased edges. None when nothing was painted (the edit acts everywhere)."""
    if not painted or not painted.get("layers"):
        return None
    opacity = np.max([np.asarray(layer)[..., 3] for layer in painted["layers"]], axis=0).astype(np.float32)
    return opacity / opacity.max() if opacity.any() else None


def one_line(error: AnalogizeError) -> gr.Error:
    return gr.Error(str(error), print_exception=False)


def reporter(progress: gr.Progress, desc: str, unit: str):
    """A (done, total) callback for Jobs that moves the page's bar (gr.Progress) of this request."""
    return lambda done, total: progress((done, total), desc=desc, unit=unit)


def build_app(jobs: Jobs) -> gr.Blocks:
    with gr.Blocks(title="analogize") as app:
        gr.Markdown("# analogize\nTeach an edit with before/after pairs, then do the same to any photo.")
        job = gr.State(None)
        with gr.Tabs():
            with gr.Tab("Teach", id="teach", elem_id="teach-tab"):
                with gr.Row():
                    before = gr.File(label="Before images", file_count="multiple", elem_id="before-files")
                    after = gr.File(label="After images (same file names)", file_count="multiple",
                                    elem_id="after-files")
                    archive = gr.File(label="…or one zip with before/ and after/", file_types=[".zip"],
                                      elem_id="pairs-zip")
                with gr.Row():
                    method = gr.Dropdown(choices=list(REGISTRY), value=DEFAULT_METHOD, label="Method",
                                         elem_id="method")
                    preset = gr.Dropdown(label="Preset", elem_id="preset", **preset_kwargs(DEFAULT_METHOD))
                    steps = gr.Number(None, label="Steps (empty: the preset's)", precision=0, elem_id="steps")
                base_model = model_choice(jobs, "Pretrained weights (what the method needs is said below)",
                                          "base-model", visible=needs_pretrained(DEFAULT_METHOD))
                note = gr.Markdown(method_note(DEFAULT_METHOD))
                with gr.Row():
                    learn = gr.Button("Learn", variant="primary", elem_id="learn")
                    cancel = gr.Button("Cancel", elem_id="cancel")
                    resume = gr.Button("Resume", elem_id="resume")
                status = gr.Markdown(status_markdown(None), elem_id="training-status")
                progress = gr.HTML(elem_id="training-progress-box")
                curve = gr.LinePlot(loss_frame(None), x="step", y="value", color="loss", label="Loss",
                                    elem_id="loss-curve")
                download_edit = gr.DownloadButton("Download edit file", visible=False, elem_id="download-edit")

            with gr.Tab("Apply", id="apply", elem_id="apply-tab"):
                with gr.Row():
                    photos = gr.File(label="Photos", file_count="multiple", elem_id="photos")
                    with gr.Column():
                        # Any job id is accepted (and checked by Jobs): the list is only as
                        # fresh as the page, while a script may name an edit learned since.
                        edit_choice = gr.Dropdown(label="An edit learned here", choices=jobs.finished_edits(),
                                                  allow_custom_value=True, elem_id="edit-choice")
                        edit_upload = gr.File(label="…or an edit file", elem_id="edit-upload")
                        strength = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Strength (1 = as learned)",
                                             elem_id="strength")
                painter = gr.ImageEditor(
                    label="Optional: choose the brush and paint where the edit should act "
                          "(nothing painted = the whole photo). The first photo is shown; the map is "
                          "stretched to fit each photo.",
                    type="numpy", image_mode="RGBA", sources=(), layers=False, transforms=(),
                    brush=gr.Brush(colors=[(PAINT_COLOUR, 0.5)], color_mode="fixed"), elem_id="painter",
                )
                apply = gr.Button("Apply", variant="primary", elem_id="apply")
                apply_errors = gr.Markdown(elem_id="apply-errors")
                compare = gr.ImageSlider(label="Before / after (first photo)", type="filepath", elem_id="compare")
                results = gr.Gallery(label="Results", elem_id="results")
                with gr.Row():
                    download_one = gr.File(label="Results, one by one", file_count="multiple",
                                           elem_id="download-results")
                    download_all = gr.DownloadButton("Download all (zip)", visible=False, elem_id="download-all")

            with gr.Tab("Exemplar (PIXELS)", id="pixels", elem_id="pixels-tab"):
                gr.Markdown("Training-free: edit a photo towards an exemplar image where you paint "
                            "(PIXELS, docs/methods/pixels.md). Needs a pretrained diffusion model on the server.")
                pixels = exemplar_screen(jobs, "pixels", "Exemplar, aligned with the photo",
                                         "Choose the brush and paint where the photo should follow the exemplar "
                                         "(nothing painted = everywhere)",
                                         "Base model: a downloaded diffusers pipeline", "Edit")
                pixels_again = gr.Button("Use the result as the photo (edit again)", elem_id="pixels-again")
                pixels_history = gr.JSON(label="History of this photo's edits", elem_id="pixels-history")
                pixels_chain = gr.State([])

            with gr.Tab("Exemplar (Paint by Example)", id="pbe", elem_id="pbe-tab"):
                gr.Markdown("Paint the region to replace and drop an image of what should be there; the model "
                            "paints it in, fitted to the scene (docs/methods/paint-by-example.md). Needs a "
                            "Paint-by-Example model on the server (downloaded, or trained with `analogize train-pbe`).")
                pbe = exemplar_screen(jobs, "pbe", "Exemplar: what to paint in", "Choose the brush and paint the "
                                      "region to repaint", "Model: a Paint-by-Example checkpoint", "Paint",
                                      guidance=5.0)

        # --- teach --------------------------------------------------------------------------------
        def choose_method(name: str):
            return gr.Dropdown(**preset_kwargs(name)), gr.Dropdown(visible=needs_pretrained(name)), method_note(name)

        def show(current: str | None):
            current = current or jobs.latest_training()
            found = jobs.training_status(current) if current else None
            done = found is not None and found.edit_path is not None
            return (current, status_markdown(found), progress_html(found), loss_frame(found),
                    gr.DownloadButton(value=found.edit_path if done else None, visible=done))

        def start(before_files, after_files, zip_file, method_name, preset_name, step_count, model_name):
            try:
                started = jobs.start_training(
                    [Path(path) for path in before_files or []], [Path(path) for path in after_files or []],
                    Path(zip_file) if zip_file else None, method_name, preset_name or None,
                    int(step_count) if step_count else None, (model_name or "").strip() or None,
                )
            except AnalogizeError as error:
                raise one_line(error) from None
            return show(started)

        def stop(current: str | None):
            if current:
                jobs.cancel_training(current)
            return show(current)

        def restart(current: str | None):
            try:
                if current:
                    jobs.resume_training(current)
            except AnalogizeError as error:
                raise one_line(error) from None
            return show(current)

        shown = [job, status, progress, curve, download_edit]
        method.change(choose_method, method, [preset, base_model, note])
        learn.click(start, [before, after, archive, method, preset, steps, base_model], shown, concurrency_limit=None)
        cancel.click(stop, job, shown, concurrency_limit=None)
        resume.click(restart, job, shown, concurrency_limit=None)
        gr.Timer(REFRESH_SECONDS).tick(show, job, shown, concurrency_limit=None, show_progress="hidden")
        app.load(show, job, shown)

        # --- apply --------------------------------------------------------------------------------
        def refresh_edits():
            return gr.Dropdown(choices=jobs.finished_edits())

        def photo_to_paint(files):
            if not files:
                return None
            return {"background": str(files[0]), "layers": [], "composite": None}

        def run_apply(files, chosen_job, uploaded_edit, strength_value, painted, progress=gr.Progress()):
            try:
                if uploaded_edit:
                    edit_path = Path(uploaded_edit)
                elif chosen_job:
                    edit_path = jobs.edit_of_training(chosen_job)
                else:
                    raise AnalogizeError("no edit chosen; pick an edit learned here or upload an edit file")
                inputs, outputs, errors = jobs.apply(edit_path, [Path(path) for path in files or []],
                                                     float(strength_value), strength_map_of(painted),
                                                     reporter(progress, "photos", "photos"))
            except AnalogizeError as error:
                raise one_line(error) from None
            if not outputs:
                raise gr.Error("; ".join(errors), print_exception=False)
            zipped = outputs[0].parent.parent / RESULTS_ZIP
            return (
                "\n".join(f"- {error}" for error in errors),
                (str(inputs[0]), str(outputs[0])),
                [str(path) for path in outputs],
                [str(path) for path in outputs],
                gr.DownloadButton(value=str(zipped), visible=True),
            )

        edit_choice.focus(refresh_edits, None, edit_choice)
        photos.change(photo_to_paint, photos, painter)
        apply.click(run_apply, [photos, edit_choice, edit_upload, strength, painter],
                    [apply_errors, compare, results, download_one, download_all],
                    concurrency_limit=1, concurrency_id="apply")

        # --- exemplar screens -----------------------------------------------------------------------
        def run_pixels(source, exemplar, painted, model_name, steps_value, seed_value, chain, progress=gr.Progress()):
            check_exemplar_inputs(source, exemplar)
            try:
                result, chain = jobs.pixels(Path(source), Path(exemplar), strength_map_of(painted),
                                            (model_name or "").strip(), steps=int(steps_value),
                                            seed=int(seed_value or 0), history=chain,
                                            progress=reporter(progress, "PIXELS", "steps"))
            except AnalogizeError as error:
                raise one_line(error) from None
            return (str(source), str(result)), chain, chain

        def continue_from_result(chain):
            if not chain:
                raise gr.Error("edit the photo once first", print_exception=False)
            return chain[-1]["result"]

        def run_paint_by_example(source, exemplar, painted, model_name, steps_value, seed_value, guidance_value,
                                 progress=gr.Progress()):
            check_exemplar_inputs(source, exemplar)
            try:
                result = jobs.paint_by_example(Path(source), Path(exemplar), strength_map_of(painted),
                                               (model_name or "").strip(), steps=int(steps_value),
                                               guidance=float(guidance_value), seed=int(seed_value or 0),
                                               progress=reporter(progress, "Paint by Example", "steps"))
            except AnalogizeError as error:
                raise one_line(error) from None
            return str(source), str(result)

        for screen in (pixels, pbe):
            screen.source.change(lambda path: photo_to_paint([path] if path else None), screen.source, screen.painter)
        pixels.run.click(run_pixels, [*pixels.inputs, pixels_chain], [pixels.compare, pixels_history, pixels_chain],
                         concurrency_limit=1, concurrency_id="apply")
        # A new photo starts a new history; the result fed back in continues the current one.
        pixels.source.upload(lambda: ([], None), None, [pixels_chain, pixels_history])
        pixels_again.click(continue_from_result, pixels_chain, pixels.source)
        pbe.run.click(run_paint_by_example, pbe.inputs, pbe.compare,
                      concurrency_limit=1, concurrency_id="apply")
    # Gradio writes the description of every documented endpoint (names, labels, types) into the
    # page it serves before a login, to anyone; undocumented ones stay callable once signed in
    # (the page itself, gradio_client) but are described to no one who is not.
    for event in app.fns.values():
        event.api_visibility = "undocumented"
    return app


@dataclass
class ExemplarScreen:
    """What the two exemplar screens share: photo, exemplar, a brush over the photo, the model,
    steps, seed, a button and a before/after slider."""

    source: gr.Image
    exemplar: gr.Image
    painter: gr.ImageEditor
    base_model: gr.Dropdown
    steps: gr.Slider
    seed: gr.Number
    run: gr.Button
    compare: gr.ImageSlider
    guidance: gr.Slider | None

    @property
    def inputs(self) -> list:
        return [self.source, self.exemplar, self.painter, self.base_model, self.steps, self.seed,
                *([self.guidance] if self.guidance else [])]


def exemplar_screen(jobs: Jobs, prefix: str, exemplar_label: str, paint_label: str, model_label: str,
                    run_label: str, guidance: float | None = None) -> ExemplarScreen:
    """The shared widgets, with element ids `PREFIX-source`, `PREFIX-exemplar`, … for the tests;
    a classifier-free guidance slider starting at `guidance` when that is given."""
    with gr.Row():
        source = gr.Image(label="Photo", type="filepath", elem_id=f"{prefix}-source")
        exemplar = gr.Image(label=exemplar_label, type="filepath", elem_id=f"{prefix}-exemplar")
    painter = gr.ImageEditor(label=paint_label, type="numpy", image_mode="RGBA", sources=(), layers=False,
                             transforms=(), brush=gr.Brush(colors=[(PAINT_COLOUR, 0.5)], color_mode="fixed"),
                             elem_id=f"{prefix}-painter")
    with gr.Row():
        base_model = model_choice(jobs, model_label, f"{prefix}-base-model")
        steps = gr.Slider(1, 100, value=30, step=1, label="Steps", elem_id=f"{prefix}-steps")
        seed = gr.Number(0, precision=0, label="Seed", elem_id=f"{prefix}-seed")
        guidance_slider = (gr.Slider(1.0, 10.0, value=guidance, step=0.5, label="Guidance (1 = off)",
                                     elem_id=f"{prefix}-guidance") if guidance is not None else None)
    run = gr.Button(run_label, variant="primary", elem_id=f"{prefix}-run")
    compare = gr.ImageSlider(label="Before / after", type="filepath", elem_id=f"{prefix}-compare")
    return ExemplarScreen(source, exemplar, painter, base_model, steps, seed, run, compare, guidance_slider)


def model_choice(jobs: Jobs, label: str, elem_id: str, visible: bool = True) -> gr.Dropdown:
    """The pretrained models of this server (`serve --models-dir`), offered by name: the page never
    names a path. Any name is accepted (and checked by Jobs), as the list is only as fresh as the page."""
    models = jobs.available_models()
    if jobs.models_dir is None:
        info = "This server loads no pretrained models: start it with --models-dir DIR (docs/web.md)."
    else:
        info = "The models this server offers (its --models-dir)" + ("" if models else ": none there yet")
    dropdown = gr.Dropdown(choices=models, value=None, label=label, info=info, allow_custom_value=True,
                           visible=visible, elem_id=elem_id)
    dropdown.focus(lambda: gr.Dropdown(choices=jobs.available_models()), None, dropdown)
    return dropdown


def check_exemplar_inputs(source: str | None, exemplar: str | None) -> None:
    if not source or not exemplar:
        raise gr.Error("drop a photo and an exemplar image first", print_exception=False)


def needs_pretrained(name: str) -> bool:
    return REGISTRY[name].pretrained_setting is not None


def preset_kwargs(name: str) -> dict:
    method = REGISTRY[name]
    return {"choices": list(method.presets), "value": method.default_preset, "interactive": bool(method.presets)}


@dataclass
class Server:
    app: gr.Blocks
    url: str
    jobs: Jobs

    def close(self) -> None:
        """Stop the web server and any training it started (checkpoints stay for a resume)."""
        self.app.close()
        self.jobs.close()


def serve(workdir: Path, host: str, port: int, max_upload_mb: int, *, credentials: dict[str, str] | None = None,
          models_dir: Path | None = None, block: bool = True) -> Server:
    """Start the server; with `credentials` (user -> password) every page and API call needs a
    login (the caller has checked the host may be served: auth.check_exposure); the pages may name
    the model folders in `models_dir` (none without it). With `block`,
    serve until interrupted (Ctrl-C), then stop; otherwise return the running server (tests,
    benchmarks)."""
    jobs = Jobs(workdir, models_dir=models_dir)
    app = build_app(jobs)
    app.queue(default_concurrency_limit=1)
    _, url, _ = app.launch(
        server_name=host, server_port=port, max_file_size=f"{max_upload_mb}mb", allowed_paths=[str(jobs.workdir)],
        ssr_mode=False, prevent_thread_lock=not block, quiet=not block, footer_links=[],
        auth=password_check(credentials) if credentials else None,
        auth_message="analogize: sign in with an account this server was started with (--auth, --auth-file)",
    )
    server = Server(app, url, jobs)
    if block:  # launch() returned: the user pressed Ctrl-C
        server.close()
    return server
