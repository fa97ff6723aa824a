# The demo pipeline on the embedded, simulated dataset (included by the Makefile).
DEMO_DIR ?= build/demo
RUN_DIR ?= runs/demo
STUDENT_CONFIG ?= pipelines/configs/student-cpu.toml
TEACHER_EPOCHS ?= 10
STUDENT_EPOCHS ?= 6
DEVICE ?= cpu
METHODS := supervised kd-aps evdistill
EVENT_CACHES = $(wildcard $(DEMO_DIR)/caches/events/*.zarr)
TEST_CACHES = $(wildcard $(DEMO_DIR)/caches/test/*.zarr)

.PHONY: demo demo-data demo-teacher demo-students ablation

demo: demo-students
	$(BIN)/python pipelines/e2i_report.py $(RUN_DIR)/evdistill $(RUN_DIR)/teacher.pt $(TEST_CACHES) > $(RUN_DIR)/e2i.md
	$(BIN)/python pipelines/report.py $(RUN_DIR) $(METHODS)
	@echo "report: $(RUN_DIR)/report.md"

# Files as targets where a step is expensive, so that a second make (or make ablation after
# make demo) reuses them; the other steps are idempotent (converting or pseudo-labelling again
# finds the caches up to date).
$(DEMO_DIR)/data/manifest.json: | $(STAMP)
	$(BIN)/evtools simulate $(DEMO_DIR)/data --preset demo

demo-data: $(DEMO_DIR)/data/manifest.json
	$(BIN)/evtools convert $(DEMO_DIR)/data/events/*.hdf5 -o $(DEMO_DIR)/caches/events --repr voxel --device $(DEVICE)
	$(BIN)/evtools convert $(DEMO_DIR)/data/test/*.hdf5 -o $(DEMO_DIR)/caches/test --repr voxel --device $(DEVICE) \
		--ground-truth $(DEMO_DIR)/data/test/ground_truth

$(RUN_DIR)/teacher.pt: $(DEMO_DIR)/data/manifest.json
	$(BIN)/evtools train teacher $(DEMO_DIR)/data/images -o $@ --overwrite --epochs $(TEACHER_EPOCHS) --device $(DEVICE)

demo-teacher: demo-data $(RUN_DIR)/teacher.pt
	$(BIN)/evtools pseudolabel $(DEMO_DIR)/caches/events/*.zarr $(DEMO_DIR)/caches/test/*.zarr \
		--teacher $(RUN_DIR)/teacher.pt --overwrite --device $(DEVICE)
	$(BIN)/evtools score $(DEMO_DIR)/caches/test/*.zarr --json $(RUN_DIR)/teacher_labels.json

demo-students: demo-teacher
	for method in $(METHODS); do \
		$(BIN)/evtools train student --method $$method --config $(STUDENT_CONFIG) --epochs $(STUDENT_EPOCHS) \
			$(foreach c,$(EVENT_CACHES),--events $(c)) --images $(DEMO_DIR)/data/images \
			--teacher $(RUN_DIR)/teacher.pt -o $(RUN_DIR)/$$method --overwrite --device $(DEVICE) || exit 1; \
		$(BIN)/evtools eval $(RUN_DIR)/$$method/best.pt $(foreach c,$(TEST_CACHES),--events $(c)) \
			--truth gt_labels -o $(RUN_DIR)/$$method/eval --render 1 --device $(DEVICE) || exit 1; \
	done

# Ablation: the two baselines, EvDistill and EvDistill with each part switched off in turn, 3 seeds
# each, on the demo data; mean and standard deviation, overall and per APS condition, in
# $(ABLATION_DIR)/report.md.
ABLATION_DIR ?= runs/ablation
ABLATION_EPOCHS ?= $(STUDENT_EPOCHS)
SEEDS ?= 0 1 2
VARIANTS ?= supervised kd-aps full no-bmr no-affinity no-distribution

ablation: demo-teacher
	for seed in $(SEEDS); do for variant in $(VARIANTS); do \
		case $$variant in supervised|kd-aps) flags="--method $$variant";; full) flags="--method evdistill";; \
			*) flags="--method evdistill --$$variant";; esac; \
		$(BIN)/evtools train student $$flags --seed $$seed --config $(STUDENT_CONFIG) \
			--epochs $(ABLATION_EPOCHS) $(foreach c,$(EVENT_CACHES),--events $(c)) --images $(DEMO_DIR)/data/images \
			--teacher $(RUN_DIR)/teacher.pt -o $(ABLATION_DIR)/$$variant-seed$$seed --overwrite --device $(DEVICE) || exit 1; \
		$(BIN)/evtools eval $(ABLATION_DIR)/$$variant-seed$$seed/best.pt $(foreach c,$(TEST_CACHES),--events $(c)) \
			--truth gt_labels -o $(ABLATION_DIR)/$$variant-seed$$seed/eval --device $(DEVICE) || exit 1; \
	done; done
	$(BIN)/python pipelines/ablation_report.py $(ABLATION_DIR) $(VARIANTS)
