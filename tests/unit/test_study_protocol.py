"""The optimizer study's protocol (studies/optstudy): the search, the measures and the run records, on made-up scores.

The tuning protocol is a pure function of the finished runs, so it is tested here against score functions whose
best setting is known; the study's end-to-end run is tests/integration/test_optimizer_study.py.
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "studies"))
from optstudy import measures, search  # a script's package, not installed
from optstudy.runner import _largest_spike
from optstudy.space import OPTIMIZERS, Setting, lr_of
from optstudy.workloads import ADAM_EXTRAS_WORKLOAD, WORKLOADS, scaled


def complete(workload, optimizer, score, n_seeds=5, max_points=search.MAX_POINTS):
    """Run the plan to the end against `score(setting, seed)`; return the plan, the scores and the rounds."""
    scores, rounds = {}, 0
    while True:
        plan = search.plan(workload, optimizer, scores, n_seeds, max_points)
        if not plan.needed:
            return plan, scores, rounds
        rounds += 1
        assert rounds < 50, "the search does not converge"
        for setting, seed in plan.needed:
            assert (setting.tag(), seed) not in scores, "a finished run was asked for again"
            scores[(setting.tag(), seed)] = score(setting, seed)


def peaked(k_best, width=1.5):
    return lambda s, seed: 0.9 - 0.01 * abs(s.k - k_best) ** width


@pytest.mark.parametrize("k_best", [-14, -9, -3])  # far below, at, far above the Adam default (-9)
def test_lr_search_extends_until_the_best_rate_is_interior_and_bracketed(k_best):
    plan, scores, _ = complete(WORKLOADS["sst2-mlp"], "adam", peaked(k_best))
    search_ = plan.searches[-1]
    assert plan.chosen.k == k_best and not search_.at_edge
    ks = sorted(search_.scores)
    assert ks == list(range(ks[0], ks[-1] + 1)), "the grid is contiguous on the lattice"
    best = search_.scores[k_best]
    assert max(search_.scores[ks[0]], search_.scores[ks[-1]]) <= best - search.BRACKET + 1e-9
    assert plan.seeds == [0, 1, 2, 3, 4]
    assert all((plan.chosen.tag(), s) in scores for s in plan.seeds)


def test_a_best_rate_beyond_the_grid_limit_is_reported_at_the_edge():
    plan, _, _ = complete(WORKLOADS["sst2-mlp"], "adam", peaked(+5), max_points=5)
    assert plan.searches[-1].at_edge
    assert plan.chosen.k == max(plan.searches[-1].scores)


def test_ties_choose_the_middle_of_the_plateau():
    plan, _, _ = complete(WORKLOADS["sst2-mlp"], "adam", lambda s, seed: 0.8 if -11 <= s.k <= -7 else 0.5)
    assert plan.chosen.k == -9


def test_when_no_rate_trains_the_search_stops_without_seeds():
    plan, scores, _ = complete(WORKLOADS["sst2-mlp"], "adam", lambda s, seed: math.nan)
    assert plan.failed and plan.chosen is None
    assert len(scores) == 3 and all(seed == 0 for _, seed in scores)


def test_a_better_momentum_triggers_a_new_rate_search_around_the_chosen_rate():
    # SGD's best: momentum 0 with a rate ten times larger than momentum 0.9's (the effective step lr / (1 - m)).
    def score(s, seed):
        k_best = -2 if s.momentum == 0.9 else 1
        return peaked(k_best)(s, seed) + (0.02 if s.momentum == 0.0 else 0.0)

    plan, _, _ = complete(WORKLOADS["sst2-textcnn"], "sgd", score)
    assert [s.template.momentum for s in plan.searches] == [0.9, 0.0]
    assert plan.chosen == Setting(1, momentum=0.0)
    assert not plan.searches[-1].at_edge
    assert set(plan.coordinate["momentum"]) == {"momentum 0.9", "momentum 0", "momentum 0.5", "momentum 0.95"}


def test_momentum_values_are_tried_at_the_same_effective_step_size():
    plan, scores, _ = complete(WORKLOADS["sst2-textcnn"], "sgd", peaked(-2))
    assert plan.chosen == Setting(-2, momentum=0.9)
    tried = {tag for tag, seed in scores if seed == 0 and not tag.endswith("_m0.9")}
    # lr / (1 - m) kept: x10 for momentum 0 (3 lattice steps), x5 for 0.5 (2), x0.5 for 0.95 (-1)
    assert {"k+1_m0", "k+0_m0.5", "k-3_m0.95"} <= tried


def test_adam_eps_and_beta2_are_tuned_on_one_workload_only():
    def score(s, seed):
        return peaked(-9)(s, seed) + (0.03 if s.eps == 1e-6 and s.beta2 == 0.99 else 0.0)

    tuned, _, _ = complete(WORKLOADS[ADAM_EXTRAS_WORKLOAD], "adam", score)
    assert (tuned.chosen.beta2, tuned.chosen.eps) == (0.99, 1e-6)
    assert len(tuned.coordinate["beta2, eps"]) == 6
    other, _, _ = complete(WORKLOADS["sst2-mlp"], "adam", score)
    assert (other.chosen.beta2, other.chosen.eps) == (None, None) and not other.coordinate


def test_sparse_workload_tries_only_optimizers_with_sparse_gradients_and_no_momentum():
    workload = WORKLOADS["sst2-mlp_nb"]
    assert workload.optimizers == ["sgd", "adagrad"]
    plan, _, _ = complete(workload, "sgd", peaked(-1))
    assert plan.chosen.momentum == 0.0 and not plan.coordinate


def test_cross_validated_workload_runs_a_whole_number_of_passes_over_its_folds():
    workload = WORKLOADS["mr-textcnn"]
    plan, _, _ = complete(workload, "adam", peaked(-8))
    assert plan.seeds == [0, 1, 2, 3, 4, 5]
    assert [workload.fold_of_seed(s) for s in plan.seeds] == [0, 1, 2, 0, 1, 2]


def test_lattice_is_three_points_per_decade_and_every_optimizer_has_its_config():
    assert [lr_of(k) for k in (-9, -8, -7, -6)] == [0.001, 0.00215, 0.00464, 0.01]
    root = Path(__file__).resolve().parents[2]
    assert all((root / o.config).is_file() for o in OPTIMIZERS.values())
    assert Setting(-9, momentum=0.9).overrides() == ["--model.optimizer.lr=0.001", "--model.optimizer.momentum=0.9"]


def test_runs_of_another_budget_live_in_another_folder():
    small = scaled(0.1)
    assert all(small[n].folder != w.folder for n, w in WORKLOADS.items())


def test_measures():
    mean, ci = measures.mean_ci([0.80, 0.82, 0.81, 0.79, 0.83])
    assert mean == pytest.approx(0.81) and ci == pytest.approx(2.776 * 0.0158114 / math.sqrt(5), rel=1e-4)
    assert math.isnan(measures.mean_ci([0.8])[1])
    record = {"dev_curve": [[10, 0.5, 1.0], [20, 0.7, 2.0], [30, 0.75, 3.0]]}
    assert measures.reach(record, 0.7) == 20 and math.isnan(measures.reach(record, 0.9))
    plan, _, _ = complete(WORKLOADS["sst2-mlp"], "adam", lambda s, seed: 0.9 if -10 <= s.k <= -8 else 0.5)
    assert measures.lr_width(plan) == pytest.approx(2 / 3)


def test_loss_spike_is_the_largest_rise_of_the_moving_average_above_its_low():
    flat = [1.0] * 100
    assert _largest_spike(flat, 20) == 0.0
    spiked = [1.0] * 50 + [3.0] * 20 + [0.5] * 30
    assert _largest_spike(spiked, 20) == pytest.approx(2.0)
    assert math.isinf(_largest_spike([1.0, math.nan] * 20, 20))


def test_schedule_free_gets_no_momentum_search_and_its_own_warmup():
    opt = OPTIMIZERS["schedule_free_adamw"]
    assert opt.schedule_free and not opt.momentum
    assert replace(Setting(-8), eps=1e-6).tag() == "k-8_e1e-06"


def _searches(k_best_of_workload):
    found = {}
    for name, k_best in k_best_of_workload.items():
        workload = WORKLOADS[name]
        found[name] = [
            measures.Entry(workload, opt, complete(workload, opt, peaked(k_best, width=1.0))[0], [])
            for opt in workload.optimizers
        ]
    return found


def test_robust_rate_minimises_the_worst_shortfall_across_a_models_workloads():
    from optstudy.recipes import robust_rates

    rows = robust_rates(_searches({"sst2-textcnn": -9, "mr-textcnn": -7}))
    (row,) = [r for r in rows if r["optimizer"] == "Adagrad" and r["config"] == "textcnn_rand.yaml"]
    assert row["model"] == "textcnn" and row["workloads"] == "sst2-textcnn, mr-textcnn"
    assert {r["config"] for r in rows if r["optimizer"] == "Adagrad"} == {"textcnn.yaml", "textcnn_rand.yaml"}
    assert row["robust_lr"] == lr_of(-8)  # one step from each workload's own best: 1 point short on both
    assert row["worst_shortfall"] == pytest.approx(0.01) and row["per_workload_lr"] == "0.001, 0.00464"


def test_a_workload_counts_for_the_robust_rates_only_once_every_optimizer_is_finished():
    from optstudy.recipes import robust_rates

    found = _searches({"sst2-mlp": -6, "mr-mlp": -6, "imdb-mlp": -4})
    everything = robust_rates(found)
    assert {r["robust_lr"] for r in everything if r["optimizer"] == "Adam"} == {lr_of(-5)}
    unfinished = found["imdb-mlp"][-1]
    found["imdb-mlp"][-1] = replace(unfinished, plan=replace(unfinished.plan, chosen=None))
    rows = robust_rates(found)
    assert rows and all(r["workloads"] == "sst2-mlp, mr-mlp" and r["robust_lr"] == lr_of(-6) for r in rows)
    found["imdb-mlp"].pop()  # never started counts as unfinished too
    assert robust_rates(found) == rows


def test_the_experiment_config_is_robust_across_every_workload_and_a_benchmark_recipe_across_its_own():
    from optstudy.recipes import robust_rates

    rows = robust_rates(_searches({"sst2-textcnn": -8, "mr-textcnn": -8, "imdb-textcnn": -6}))
    adam = {r["config"]: r for r in rows if r["optimizer"] == "Adam"}
    assert set(adam) == {"textcnn.yaml", "textcnn_rand.yaml"}, "textcnn_imdb.yaml: one workload, no row"
    assert adam["textcnn_rand.yaml"]["workloads"] == "sst2-textcnn, mr-textcnn"
    assert adam["textcnn_rand.yaml"]["robust_lr"] == lr_of(-8), "the document budget does not move the sentences'"
    assert adam["textcnn.yaml"]["workloads"] == "sst2-textcnn, mr-textcnn, imdb-textcnn"
    assert adam["textcnn.yaml"]["robust_lr"] == lr_of(-7)  # one step from every workload's best


def test_the_budget_check_flags_a_finished_workload_whose_best_optimizer_is_best_at_the_end():
    workload = WORKLOADS["sst2-mlp_nb"]  # two optimizers, dev every 35 steps up to 700
    assert workload.optimizers == ["sgd", "adagrad"]

    def table(best_step_of_best, complete=True):
        return [
            {"workload": workload.name, "optimizer": "SGD (momentum)", "complete": True, "best_dev_mean": 0.80,
             "best_step_median": workload.steps},
            {"workload": workload.name, "optimizer": "Adagrad", "complete": complete, "best_dev_mean": 0.81,
             "best_step_median": best_step_of_best},
        ]  # fmt: skip

    defs = {workload.name: workload}
    assert [r["optimizer"] for r in measures.short_budgets(table(700), defs)] == ["Adagrad"]
    assert measures.short_budgets(table(315), defs) == []  # only the best optimizer's end counts
    assert measures.short_budgets(table(700, complete=False), defs) == []  # not finished: not judged yet
    assert measures.short_budgets(table(700)[:1], defs) == []


def record(workload, optimizer, tag, seed, status="ok"):
    """A finished run's result.json, with every field a published run keeps."""
    from optstudy.restore import setting_of

    s = setting_of(tag)
    return {"workload": workload, "optimizer": optimizer, "setting": tag, "lr": s.lr, "momentum": s.momentum,
            "beta2": s.beta2, "eps": s.eps, "seed": seed, "fold": 0, "budget": WORKLOADS[workload].steps,
            "status": status, "best_dev": 0.8125, "best_step": 320, "final_dev": 0.8, "test_at_best_dev": 0.79,
            "steps": 640, "loss_spike": 0.05, "final_train_loss": 0.25, "train_seconds": 12.5,
            "wall_seconds": 15.25, "dev_curve": [[32, 0.5, 0.625], [64, 0.8125, 1.25]],
            "loss_curve": [0.75, 0.5]}  # fmt: skip


def test_published_runs_restore_as_the_finished_runs_they_were(tmp_path):
    from optstudy.report import _write_runs
    from optstudy.restore import restore_published, setting_of
    from optstudy.runner import load_results

    for tag in ("k-6", "k-4_m0.9", "k-9_b0.99_e1e-06"):
        assert setting_of(tag).tag() == tag
    defs = {name: WORKLOADS[name] for name in ("sst2-mlp", "sst2-textcnn")}
    published = {
        ("sst2-mlp", "adam", "k-9_b0.99_e1e-06", 0): record("sst2-mlp", "adam", "k-9_b0.99_e1e-06", 0),
        ("sst2-mlp", "sgd", "k-4_m0.9", 1): record("sst2-mlp", "sgd", "k-4_m0.9", 1, "diverged"),
        # the frequency test reads this run's checkpoint, which no CSV holds: it is run again, not restored
        ("sst2-textcnn", "sgd", "k-4_m0.9", 1): record("sst2-textcnn", "sgd", "k-4_m0.9", 1),
    }
    out = tmp_path / "published"
    out.mkdir()
    _write_runs(out, published, chosen={("sst2-textcnn", "sgd", "k-4_m0.9", 1)})
    runs_root = tmp_path / "runs"
    assert restore_published(out, runs_root, defs) == 2
    assert restore_published(out, runs_root, defs) == 0, "a run already there is never overwritten"
    restored = load_results(runs_root, defs)
    assert set(restored) == set(list(published)[:2])
    for key, got in restored.items():
        want = published[key]
        assert {k: got[k] for k in want} == want
    other_budget = {"sst2-mlp": replace(WORKLOADS["sst2-mlp"], steps=64)}
    assert restore_published(out, tmp_path / "scaled", other_budget) == 0, "runs of another budget stay out"


def test_multi_label_runs_restore_with_their_per_label_reports_and_only_with_them(tmp_path):
    from optstudy.report import _write_per_label, _write_runs
    from optstudy.restore import restore_published
    from optstudy.runner import load_results

    defs = {"goemotions-mlp": WORKLOADS["goemotions-mlp"]}
    with_report = ("goemotions-mlp", "adam", "k-9", 1)
    without = ("goemotions-mlp", "sgd", "k-4_m0.9", 0)
    results = {key: record(*key) for key in (with_report, without)}
    trained = tmp_path / "trained"
    report = trained / defs["goemotions-mlp"].folder / "adam" / "k-9" / "seed1" / "test_per_label.csv"
    report.parent.mkdir(parents=True)
    report.write_text("label,precision,recall,f1,support\nadmiration,0.5,0.25,0.3333,12\ngrief,0.0,0.0,0.0,2\n")
    out = tmp_path / "published"
    out.mkdir()
    _write_runs(out, results, chosen=set(results))
    _write_per_label(out, results, trained, defs)

    runs_root = tmp_path / "runs"
    assert restore_published(out, runs_root, defs) == 1, "a run whose report was not published is trained again"
    assert set(load_results(runs_root, defs)) == {with_report}
    restored = runs_root / defs["goemotions-mlp"].folder / "adam" / "k-9" / "seed1" / "test_per_label.csv"
    assert restored.read_text().splitlines() == report.read_text().splitlines()


def test_a_workload_whose_first_search_is_still_running_gets_its_figure(tmp_path):
    from optstudy.plots import workload_figure

    imdb = WORKLOADS["imdb-textcnn"]
    first = record("imdb-textcnn", "sgd", "k-4_m0.9", 0)  # one of the first three rates: no search finished
    found = measures.entries(imdb, ["sgd"], {("imdb-textcnn", "sgd", "k-4_m0.9", 0): first}, n_seeds=5)
    assert not found[0].plan.searches and not found[0].seeds
    workload_figure(found, math.nan, {}, tmp_path / "imdb-textcnn.png")
    assert (tmp_path / "imdb-textcnn.png").stat().st_size > 10_000


def test_a_workload_limited_to_some_optimizers_plans_only_those():
    imdb = WORKLOADS["imdb-textcnn"]
    assert imdb.only and imdb.optimizers == [o for o in OPTIMIZERS if o in imdb.only]
    assert {"sgd", "rmsprop", "adam"} <= set(imdb.optimizers)
    assert WORKLOADS["sst2-textcnn"].optimizers == list(OPTIMIZERS)


def test_where_neither_optimizer_reaches_the_target_the_looser_target_says_which_is_faster():
    from optstudy.report import _verdicts

    workload = WORKLOADS["sst2-mlp"]  # dev every 32 steps

    def entry(optimizer, curve):
        plan, _, _ = complete(workload, optimizer, peaked(-9))
        seeds = []
        for seed in plan.seeds:
            r = record(workload.name, optimizer, plan.chosen.tag(), seed)
            r["dev_curve"] = [[step, value, 0.0] for step, value in curve]
            r["best_dev"], r["test_at_best_dev"] = max(v for _, v in curve), 0.8 + 0.001 * seed
            seeds.append(r)
        return measures.Entry(workload, optimizer, plan, seeds)

    adam = entry("adam", [(32, 0.80), (64, 0.84), (96, 0.88)])
    sgd = entry("sgd", [(32, 0.70), (64, 0.80), (96, 0.87)])
    best = measures.Entry(workload, "rmsprop", adam.plan, [dict(r, best_dev=0.95) for r in adam.seeds])
    target = measures.target_of([adam, sgd, best])  # 0.98 x 0.95 = 0.931: neither Adam nor SGD gets there
    rows = [measures.summary_row(e, target, {}) for e in (adam, sgd)]
    assert rows[0]["loose_target_dev"] == pytest.approx(0.90 * 0.95)  # 0.855: both get there at step 96
    assert [r["seeds_reaching_target"] for r in rows] == ["0/5", "0/5"]
    assert [r["seeds_reaching_loose_target"] for r in rows] == ["5/5", "5/5"]
    [against_sgd, _] = _verdicts(rows)
    assert "about as fast to the looser 90 % target (96 against 96 median steps); neither reaches the target" in (
        against_sgd
    )
    rows[1]["steps_to_loose_target_median"] = math.nan
    assert (
        "faster: it reaches the looser 90 % target (96 median steps), SGD (momentum) never does" in (_verdicts(rows)[0])
    )

    target = 0.98 * 0.89  # the target 0.872: only Adam reaches it; the looser 0.801: Adam at 64, SGD at 96
    adam_row, sgd_row = (measures.summary_row(e, target, {}) for e in (adam, sgd))
    assert adam_row["steps_to_target_median"] == 96 and math.isnan(sgd_row["steps_to_target_median"])
    assert (adam_row["steps_to_loose_target_median"], sgd_row["steps_to_loose_target_median"]) == (64, 96)
    assert (
        "faster: it reaches the target (96 median steps), SGD (momentum) never does"
        in _verdicts([adam_row, sgd_row])[0]
    )
