"""`pdedit eval`: the edit metrics on clips with known defects, and the model metrics' arithmetic.

Edit metrics: the source against itself, the per-frame oracle edit, a flickering and a frozen version of
it; each defect must move the figure that is meant to catch it. Model metrics: the Fréchet distance
against its closed form, the Inception Score at its bounds, tiny random extractors of the published
architectures saved and loaded back (FVD of a set against itself ~0, growing with perturbation;
deterministic), and a tiny CLIP trained for a few steps so that matching prompts score higher than
shuffled ones.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import assert_refused, run, snapshot
from pdedit.instructions import apply_edit
from pdedit.video import Clip, plan_window, probe, save_image, write_video

EDIT_KEYS = {"path", "keyframe_psnr", "warp_error", "warp_error_ratio", "flow_epe", "oracle_psnr", "per_frame"}


# ---- edits ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(sample_clip, tmp_path_factory) -> dict[str, Path]:
    """The sample clip (12 frames, 64x48) and edited versions of it with known defects."""
    folder = tmp_path_factory.mktemp("edits")
    info = probe(sample_clip)
    source = list(Clip(info, plan_window(info), (info.width, info.height)))
    oracle = [apply_edit(f, "auto:sepia") for f in source]
    # Flicker: the oracle with its brightness alternating by 12% from frame to frame.
    flicker = [np.clip(f * (1.12 if i % 2 else 0.88), 0, 255).astype(np.uint8) for i, f in enumerate(oracle)]
    frozen = [oracle[0]] * len(oracle)  # the first edited frame held: the motion is lost
    out = {"source": sample_clip}
    for name, frames in (("oracle", oracle), ("flicker", flicker), ("frozen", frozen)):
        out[name] = write_video(folder / f"{name}.mp4", frames, info.fps)
    save_image(folder / "first.png", oracle[0])
    out["first_png"] = folder / "first.png"
    return out


@pytest.fixture(scope="module")
def scores(clips) -> dict:
    """`pdedit eval edit --json` of the three edited versions, by file stem."""
    result = run("eval", "edit", clips["source"], clips["oracle"], clips["flicker"], clips["frozen"],
                 "--oracle", "auto:sepia", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["source"] == str(clips["source"])
    return {Path(v["path"]).stem: v for v in report["videos"]}


def test_source_against_itself_is_exactly_as_steady_and_keeps_all_motion(clips):
    from pdedit.evaluate.edit import evaluate_edits

    report = evaluate_edits(clips["source"], [clips["source"]])
    (scored,) = report.videos
    assert scored.warp_error_ratio == pytest.approx(1.0, abs=1e-9)
    assert scored.flow_epe == pytest.approx(0.0, abs=1e-9)
    assert scored.keyframe_psnr is None and scored.oracle_psnr is None  # no edits given: nothing to compare
    assert len(scored.per_frame["warp_error"]) == scored.frames - 1 == 11


def test_json_has_exactly_the_keys_of_the_issue(scores):
    for video in scores.values():
        assert set(video) == EDIT_KEYS
        assert len(video["per_frame"]["oracle_psnr"]) == 12
        assert set(video["per_frame"]["keyframe_psnr"]) == {"first", "last"}


def test_per_frame_edit_scores_high_against_the_oracle_and_at_the_keyframes(scores):
    oracle = scores["oracle"]
    # The H.264 round trip of a 64x48 clip caps this near 33 dB; the keyframes come from the oracle.
    assert oracle["oracle_psnr"] > 30 and oracle["keyframe_psnr"] > 30
    assert scores["frozen"]["oracle_psnr"] < oracle["oracle_psnr"] - 5


def test_flicker_raises_the_warping_error_ratio(scores):
    assert scores["oracle"]["warp_error_ratio"] < 1.5
    assert scores["flicker"]["warp_error_ratio"] > 3 * scores["oracle"]["warp_error_ratio"]


def test_a_frozen_clip_loses_the_source_motion(scores):
    assert scores["frozen"]["flow_epe"] > scores["oracle"]["flow_epe"] + 0.3
    assert scores["frozen"]["warp_error_ratio"] > scores["oracle"]["warp_error_ratio"]


def test_keyframe_image_edit_is_scored_against_the_first_frame_only(clips):
    result = run("eval", "edit", clips["source"], clips["oracle"], clips["source"], "--first-edit",
                 clips["first_png"], "--json")
    assert result.exit_code == 0, result.output
    oracle, source = json.loads(result.stdout)["videos"]
    assert set(oracle["per_frame"]["keyframe_psnr"]) == {"first"}
    assert oracle["keyframe_psnr"] > 30 > source["keyframe_psnr"] + 10


def test_table_and_plot(clips, tmp_path):
    plot = tmp_path / "frames.png"
    result = run("eval", "edit", clips["source"], clips["oracle"], clips["frozen"], "--oracle", "auto:sepia",
                 "--plot", plot)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "warp err" in lines[0] and lines[2].startswith("oracle.mp4") and lines[3].startswith("frozen.mp4")
    assert lines[-1] == str(plot) and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, words", [
    (["--oracle", "instruct:make it winter"], ["--oracle", "auto:"]),
    (["--oracle", "auto:nosuch"], ["nosuch"]),
    (["--first-edit", "missing.png"], ["--first-edit", "missing.png"]),
    (["--start", "99"], ["--start", "past the end"]),
])
def test_bad_eval_edit_input_is_refused_and_writes_no_plot(clips, tmp_path, args, words):
    before = snapshot(tmp_path)
    result = run("eval", "edit", clips["source"], clips["oracle"], *args, "--plot", tmp_path / "p.png")
    assert_refused(result, before, tmp_path, *words)


def test_missing_edited_video_or_a_plot_that_is_not_png_is_refused(clips, tmp_path):
    before = snapshot(tmp_path)
    assert_refused(run("eval", "edit", clips["source"], tmp_path / "nothere.mp4"), before, tmp_path, "nothere.mp4")
    assert_refused(run("eval", "edit", clips["source"], clips["oracle"], "--plot", tmp_path / "plot.jpg"), before,
                   tmp_path, "--plot", ".png")


def _frames(path) -> list[np.ndarray]:
    """Every frame of ``path`` at its own size."""
    info = probe(path)
    return list(Clip(info, plan_window(info), (info.width, info.height)))


def test_compare_writes_the_source_window_and_each_edit_side_by_side(clips, tmp_path):
    side = tmp_path / "side.mp4"
    result = run("eval", "edit", clips["source"], clips["oracle"], clips["frozen"], "--compare", side,
                 "--end", 1.0)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == str(side)
    info, edit = probe(side), probe(clips["oracle"])
    assert (info.width, info.height, info.frame_count) == (3 * edit.width, edit.height, 6)  # 1 s of the 6 fps source
    w, last = edit.width, _frames(side)[-1][24:].astype(int)  # below the labels
    source, oracle, frozen = (_frames(clips[k]) for k in ("source", "oracle", "frozen"))
    assert np.abs(last[:, :w] - source[5][24:]).mean() < 12  # the source tile ends where the window ends
    assert np.abs(last[:, w:2 * w] - oracle[5][24:]).mean() < 12  # each edit on the source's time line
    assert np.abs(last[:, 2 * w:] - frozen[5][24:]).mean() < 12
    assert np.abs(last[:, :w] - last[:, w:2 * w]).mean() > 5  # the source tile is not the sepia edit
    assert [p.name for p in tmp_path.iterdir()] == ["side.mp4"]  # no temporary window left behind
    before = snapshot(tmp_path)  # an existing OUT is replaced only with --force; OUT must be an mp4
    assert_refused(run("eval", "edit", clips["source"], clips["oracle"], "--compare", side), before, tmp_path,
                   "side.mp4", "--force")
    assert_refused(run("eval", "edit", clips["source"], clips["oracle"], "--compare", tmp_path / "s.gif"), before,
                   tmp_path, "--compare", ".mp4")


def test_dis_flow_recovers_a_shift_and_masks_what_leaves_the_frame():
    from skimage import data

    from pdedit.evaluate.flow import dis_flow, non_occluded

    image = np.ascontiguousarray(data.astronaut()[100:260, 100:300])  # (160, 200, 3), textured
    shifted = np.roll(image, 3, axis=1)  # b(x) = a(x - 3): a(x) = b(x + 3)
    flow = dis_flow(image, shifted)
    inner = flow[20:-20, 20:-20]
    assert np.median(inner[..., 0]) == pytest.approx(3.0, abs=0.2)
    assert np.median(inner[..., 1]) == pytest.approx(0.0, abs=0.2)
    mask = non_occluded(flow, dis_flow(shifted, image))
    assert mask[20:-20, 20:-20].mean() > 0.9 and not mask[:, -2:].any()  # the last columns leave the frame


def test_eval_edit_help_example_works(tmp_path, monkeypatch):
    text = [line.strip() for line in run("eval", "edit", "--help").stdout.rstrip().splitlines()]
    example = text[text.index("Example:") + 1:]
    monkeypatch.chdir(tmp_path)
    for line in example:
        argv = shlex.split(line)
        assert argv[0] == "pdedit"
        result = run(*argv[1:])
        assert result.exit_code == 0, result.output
    assert Path("frames.png").is_file()


# ---- model metrics: arithmetic --------------------------------------------------------------------


def test_frechet_distance_matches_the_closed_form_for_commuting_covariances():
    from pdedit.evaluate.scores import frechet_distance

    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))  # shared eigenvectors: sqrt(s1 s2) has the eigenvalues' roots
    a, b = rng.uniform(0.5, 3, 5), rng.uniform(0.5, 3, 5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu1, q @ np.diag(a) @ q.T, mu1, q @ np.diag(a) @ q.T) == pytest.approx(0, abs=1e-9)


def test_gaussian_stats_of_samples_give_the_distance_of_their_gaussians():
    from pdedit.evaluate.scores import frechet_distance, gaussian_stats

    rng = np.random.default_rng(1)
    x = rng.normal([0, 0, 0], [1, 2, 3], size=(20000, 3))
    y = rng.normal([1, 0, 0], [1, 1, 1], size=(20000, 3))
    expected = 1.0 + (2 - 1) ** 2 + (3 - 1) ** 2  # |dmu|^2 + sum (sigma1 - sigma2)^2 for diagonal covariances
    assert frechet_distance(*gaussian_stats(x), *gaussian_stats(y)) == pytest.approx(expected, rel=0.05)


def test_inception_score_is_one_for_a_single_answer_and_k_for_k_sure_classes():
    from pdedit.evaluate.scores import inception_score

    same = np.tile([0.2, 0.3, 0.5], (8, 1))
    assert inception_score(same)[0] == pytest.approx(1.0)
    sure = np.eye(4)[np.arange(8) % 4]  # each sample certain, the classes balanced
    mean, std = inception_score(sure, splits=2)
    assert mean == pytest.approx(4.0, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)


# ---- model metrics: extractors ----------------------------------------------------------------------


def test_extractor_architectures_carry_the_published_layer_names_and_shapes(single_thread_torch):
    import torchvision

    from pdedit.evaluate.i3d import InceptionI3d
    from pdedit.evaluate.inception import FIDInception

    with torch.device("meta"):  # shapes only: no memory, no initialisation
        # pytorch-fid builds its FID network on torchvision's Inception3 (1008 classes, no aux head).
        reference = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False,
                                                    num_classes=1008)
        mine, i3d_net = FIDInception(), InceptionI3d()
    shapes = {k: tuple(v.shape) for k, v in mine.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    i3d = {k: tuple(v.shape) for k, v in i3d_net.state_dict().items()}  # names of piergiaj/pytorch-i3d
    assert i3d["Conv3d_1a_7x7.conv3d.weight"] == (64, 3, 7, 7, 7)
    assert i3d["Mixed_5c.b3b.conv3d.weight"] == (128, 832, 1, 1, 1)
    assert i3d["logits.conv3d.weight"] == (400, 1024, 1, 1, 1) and i3d["logits.conv3d.bias"] == (400,)


@pytest.fixture(scope="module")
def extractors(tmp_path_factory, single_thread_torch) -> dict[str, Path]:
    """Tiny random I3D, FID Inception and C3D (seeded), saved as safetensors files."""
    from safetensors.torch import save_file

    from pdedit.evaluate.c3d import C3D
    from pdedit.evaluate.i3d import InceptionI3d
    from pdedit.evaluate.inception import FIDInception

    folder = tmp_path_factory.mktemp("extractors")
    torch.manual_seed(0)
    # Random deep ReLU nets lose their signal layer by layer (every clip then gets the same features), so
    # C3D gets He initialisation and the batch norms of the others are calibrated on random inputs of the
    # sizes the tests use, as a trained network's statistics would be.
    c3d = C3D(num_classes=6, width=1 / 16, hidden=32)
    for module in c3d.modules():
        if isinstance(module, (torch.nn.Conv3d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            torch.nn.init.zeros_(module.bias)
    i3d, inception = InceptionI3d(num_classes=12, width=1 / 16), FIDInception(num_classes=10, width=1 / 8)
    for net, batch in ((i3d, torch.rand(6, 3, 8, 64, 64) * 2 - 1), (inception, torch.rand(12, 3, 75, 75) * 2 - 1)):
        for module in net.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.momentum = None  # a plain average over the calibration batch
        with torch.no_grad():
            net.train()(batch)
    paths = {}
    for name, net in (("i3d", i3d), ("inception", inception), ("c3d", c3d)):
        paths[name] = folder / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(paths[name]))
    return paths


def _clips(n: int, seed: int, frames: int = 8, side: int = 48) -> np.ndarray:
    """n smooth random uint8 clips (n, T, H, W, 3) of a blob drifting over a gradient."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    out = np.empty((n, frames, side, side, 3), np.uint8)
    for i in range(n):
        colour, start, speed = rng.uniform(40, 220, 3), rng.uniform(0.2, 0.8, 2), rng.uniform(-0.05, 0.05, 2)
        for t in range(frames):
            cx, cy = start + speed * t
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.02)[..., None]
            out[i, t] = np.clip(colour * blob + 120 * xx[..., None] * (1 - blob), 0, 255)
    return out


def test_fvd_of_a_set_against_itself_is_zero_and_grows_with_perturbation(extractors):
    from pdedit.evaluate.i3d import i3d_features, load_i3d
    from pdedit.evaluate.scores import frechet_distance, gaussian_stats

    i3d = load_i3d(extractors["i3d"])
    assert i3d.width == pytest.approx(1 / 16) and i3d.num_classes == 12  # read off the weights
    clips = _clips(24, seed=0)
    rng = np.random.default_rng(5)

    def fvd(other: np.ndarray) -> float:
        a = np.stack([i3d_features(i3d, c, size=64) for c in clips])
        b = np.stack([i3d_features(i3d, c, size=64) for c in other])
        return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))

    def noisy(sigma: float) -> np.ndarray:
        return np.clip(clips + rng.normal(0, sigma, clips.shape), 0, 255).astype(np.uint8)

    same, small, large = fvd(clips), fvd(noisy(8)), fvd(noisy(40))
    assert same == pytest.approx(0.0, abs=1e-6)
    assert 0 < small < large
    # Deterministic: the same clip gives the same features twice.
    np.testing.assert_array_equal(i3d_features(i3d, clips[0], size=64), i3d_features(i3d, clips[0], size=64))


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory, single_thread_torch, tiny_model_dir) -> Path:
    """A tiny CLIP trained for a few steps to tell 'red', 'green', 'blue' and 'white' squares apart."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tiny_model_dir / "tokenizer")  # the tiny model's: no download
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4),
        projection_dim=16))
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    words = ["red", "green", "blue", "white"]
    text = tokenizer(words, padding="max_length", return_tensors="pt")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(40):
        pixels = processor(images=list(_squares(rng)), return_tensors="pt")["pixel_values"]
        loss = model(input_ids=text["input_ids"], attention_mask=text["attention_mask"], pixel_values=pixels,
                     return_loss=True).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


COLOURS = np.array([(220, 30, 30), (30, 200, 40), (30, 40, 220), (235, 235, 235)])


def _squares(rng, n_frames: int = 1) -> np.ndarray:
    """One noisy 32x32 frame per colour word, in the order red, green, blue, white, (4 * n_frames, ...)."""
    base = np.repeat(COLOURS[:, None, None, :], 32, 1).repeat(32, 2)
    frames = np.concatenate([base] * n_frames)
    return np.clip(frames + rng.normal(0, 20, frames.shape), 0, 255).astype(np.uint8)


def test_clipsim_is_higher_for_matching_prompts_than_for_shuffled_ones(tiny_clip):
    from pdedit.evaluate.clip import load_clip

    scorer = load_clip(tiny_clip)
    rng = np.random.default_rng(1)  # frames the model never saw
    words = ["red", "green", "blue", "white"]
    clips = [_squares(rng, 3)[i::4] for i in range(4)]  # three frames of each colour
    matched = np.mean([scorer.similarity(c, w) for c, w in zip(clips, words)])
    shuffled = np.mean([scorer.similarity(c, w) for c, w in zip(clips, words[1:] + words[:1])])
    assert matched > shuffled + 0.1
    assert scorer.similarity(clips[0], "red") == scorer.similarity(clips[0], "red")  # deterministic


# ---- `pdedit eval model` end to end ----------------------------------------------------------------


@pytest.fixture(scope="module")
def video_sets(tmp_path_factory) -> dict[str, Path]:
    """Folders of short clips: real, a copy of real, and a noisy version of real; with a prompts CSV."""
    root = tmp_path_factory.mktemp("sets")
    clips = _clips(4, seed=3, frames=8, side=64)
    rng = np.random.default_rng(4)
    sets = {"real": clips, "same": clips,
            "noisy": np.clip(clips + rng.normal(0, 40, clips.shape), 0, 255).astype(np.uint8)}
    for name, data in sets.items():
        (root / name).mkdir()
        for i, clip in enumerate(data):
            write_video(root / name / f"clip{i}.mp4", list(clip), 8)
    (root / "prompts.csv").write_text("video,prompt\n" + "".join(f"clip{i}.mp4,a blob {i}\n" for i in range(4)))
    (root / "gen.csv").write_text("prompt,first\n" + "".join(f"a blob {i},real/clip{i}.mp4\n" for i in range(2)))
    return {name: root / name for name in sets} | {"prompts": root / "prompts.csv", "gen": root / "gen.csv"}


def _eval_model(extractors, *args) -> dict:
    """`pdedit eval model --json` with the tiny extractors and a small protocol."""
    result = run("eval", "model", "--i3d", extractors["i3d"], "--inception", extractors["inception"],
                 "--c3d", extractors["c3d"], "--frames", "8", "--fvd-size", "64", "--fid-size", "75",
                 "--fid-frames", "2", "--is-splits", "1", "--device", "cpu", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_eval_model_on_folders_is_zero_against_itself_and_grows_with_noise(extractors, tiny_clip, video_sets):
    same = _eval_model(extractors, "--real", video_sets["real"], "--generated", video_sets["same"],
                       "--prompts", video_sets["prompts"], "--clip", tiny_clip)
    assert same["fvd"] == pytest.approx(0, abs=1e-6) and same["fid"] == pytest.approx(0, abs=1e-6)
    assert 1.0 <= same["is"] <= 6 and same["clipsim"] is not None
    assert same["protocol"]["frames"] == 8 and same["real_clips"] == same["generated_clips"] == 4
    noisy = _eval_model(extractors, "--real", video_sets["real"], "--generated", video_sets["noisy"],
                        "--metrics", "fvd,fid")
    assert noisy["fvd"] > 1e-3 and noisy["fid"] > 1e-3 and noisy["is"] is None


def test_eval_model_generates_one_clip_per_prompt_and_can_keep_them(extractors, video_sets, tiny_model_dir,
                                                                     tmp_path):
    kept = tmp_path / "kept"
    report = _eval_model(extractors, "--real", video_sets["real"], "--model", tiny_model_dir,
                         "--prompts", video_sets["gen"], "--metrics", "fvd,is", "--steps", "2", "--size", "64x48",
                         "--save-generated", kept)
    assert report["generated_clips"] == 2 and report["fvd"] > 0 and report["is"] >= 1.0
    assert sorted(p.name for p in kept.iterdir()) == ["clip_00001.mp4", "clip_00002.mp4", "prompts.csv"]
    assert probe(kept / "clip_00001.mp4").frame_count == 8
    again = _eval_model(extractors, "--real", video_sets["real"], "--generated", kept, "--prompts",
                        kept / "prompts.csv", "--metrics", "fvd")
    # The kept clips went through H.264, so their FVD is close to, not equal to, the first run's.
    assert again["generated_clips"] == 2 and again["fvd"] == pytest.approx(report["fvd"], rel=0.5)


def test_missing_extractor_is_an_error_naming_the_model_and_where_to_get_it(video_sets, tmp_path):
    before = snapshot(tmp_path)
    result = run("eval", "model", "--real", video_sets["real"], "--generated", video_sets["same"],
                 "--metrics", "fvd")
    assert_refused(result, before, tmp_path, "I3D", "--i3d", "pytorch-i3d")
    result = run("eval", "model", "--real", video_sets["real"], "--generated", video_sets["same"],
                 "--metrics", "clipsim", "--prompts", video_sets["prompts"], "--clip", tmp_path / "nothere")
    assert_refused(result, before, tmp_path, "CLIP", "clip-vit-base-patch32")


def test_a_pickle_that_carries_code_is_refused_not_run(video_sets, tmp_path):
    bad = tmp_path / "i3d.pt"
    torch.save(torch.nn.Linear(2, 2), bad)  # a whole module: unpickling it would import and build code
    before = snapshot(tmp_path)
    result = run("eval", "model", "--real", video_sets["real"], "--generated", video_sets["same"],
                 "--metrics", "fvd", "--i3d", bad)
    assert_refused(result, before, tmp_path, "I3D", "weights_only")


@pytest.mark.parametrize("args, words", [
    (["--generated", "same", "--model", "tiny"], ["exactly one of --generated", "--model"]),
    (["--generated", "nothere"], ["--generated", "nothere", "not a folder"]),
    (["--generated", "same", "--metrics", "is"], ["10 splits", "--is-splits 1"]),
    (["--generated", "same", "--metrics", "clipsim"], ["CLIPSIM", "prompt", "clip0.mp4"]),
    (["--generated", "same", "--metrics", "fvd,psnr"], ["--metrics", "fvd, fid, is, clipsim"]),
    (["--model", "tiny", "--prompts", "bad.csv"], ["row 2", "first"]),
])
def test_bad_eval_model_input_is_refused_before_any_work(video_sets, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(video_sets["real"].parent)
    (tmp_path / "bad.csv").write_text("prompt,first\na blob,\nanother,real/clip1.mp4\n")
    before = snapshot(tmp_path)
    args = [str(tmp_path / a) if a == "bad.csv" else a for a in args]
    assert_refused(run("eval", "model", "--real", "real", *args), before, tmp_path, *words)
