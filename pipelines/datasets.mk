# Pipelines for the real datasets (included by the Makefile). The recordings are yours to give:
#   make ddd17 DDD17_ROOT=/data/ddd17 TEACHER=cityscapes.ts TEACHER_ARGS="--in-channels 3 --class-map cityscapes19-to-ddd17" IMAGES=/data/labelled
#   make mvsec MVSEC_ROOT=/data/mvsec TEACHER=teacher.pt IMAGES=/data/labelled
# DDD17: the ESS-preprocessed layout (dir0..dir6, Ev-SegNet's split: test dir4, the rest for
# training; its masks become the ground truth) or raw recordings (give DDD17_TRAIN and
# DDD17_TEST as file names under DDD17_ROOT, and GROUND_TRUTH when there is any), with the
# Ev-SegNet 200-row crop and 6 classes. MVSEC: *_data.hdf5 recordings, MVSEC_TEST names the test
# ones. Students use STUDENT_CONFIG (the paper-scale one by default).
DATASET_RUN ?= runs
DDD17_TRAIN ?= dir0 dir1 dir2 dir3 dir5 dir6
DDD17_TEST ?= dir4
DDD17_CROP ?= 0:200
MVSEC_TRAIN ?= outdoor_day2_data.hdf5
MVSEC_TEST ?= outdoor_day1_data.hdf5
DATASET_CONFIG ?= pipelines/configs/student-paper.toml
DATASET_METHODS ?= supervised kd-aps evdistill
WINDOW ?= 50ms
TEACHER_ARGS ?=
STUDENT_ARGS ?=
GROUND_TRUTH ?=

.PHONY: ddd17 mvsec

# $(1) name, $(2) root, $(3) train recordings, $(4) test recordings, $(5) convert options
define dataset_pipeline
	@test -n "$(2)" || { echo "give $(1)'s root, e.g. make $(1) $(shell echo $(1) | tr a-z A-Z)_ROOT=/data/$(1)"; exit 2; }
	@test -n "$(TEACHER)" || { echo "give TEACHER=checkpoint-or-torchscript"; exit 2; }
	mkdir -p $(DATASET_RUN)/$(1)/caches/train $(DATASET_RUN)/$(1)/caches/test
	$(BIN)/evtools convert $(addprefix $(2)/,$(3)) -o $(DATASET_RUN)/$(1)/caches/train --repr voxel --window $(WINDOW) $(5)
	$(BIN)/evtools convert $(addprefix $(2)/,$(4)) -o $(DATASET_RUN)/$(1)/caches/test --repr voxel --window $(WINDOW) $(5) \
		$(if $(GROUND_TRUTH),--ground-truth $(GROUND_TRUTH))
	$(BIN)/evtools pseudolabel $(DATASET_RUN)/$(1)/caches/train/*.zarr --teacher $(TEACHER) $(TEACHER_ARGS)
	for method in $(DATASET_METHODS); do \
		$(BIN)/evtools train student --method $$method --config $(DATASET_CONFIG) $(STUDENT_ARGS) \
			$$(for c in $(DATASET_RUN)/$(1)/caches/train/*.zarr; do echo --events $$c; done) \
			$(if $(IMAGES),--images $(IMAGES)) --teacher $(TEACHER) -o $(DATASET_RUN)/$(1)/$$method --overwrite || exit 1; \
		$(BIN)/evtools eval $(DATASET_RUN)/$(1)/$$method/best.pt \
			$$(for c in $(DATASET_RUN)/$(1)/caches/test/*.zarr; do echo --events $$c; done) \
			-o $(DATASET_RUN)/$(1)/$$method/eval --render 4 || exit 1; \
	done
endef

ddd17: $(STAMP)
	$(call dataset_pipeline,ddd17,$(DDD17_ROOT),$(DDD17_TRAIN),$(DDD17_TEST),--crop-rows $(DDD17_CROP))

mvsec: $(STAMP)
	$(call dataset_pipeline,mvsec,$(MVSEC_ROOT),$(MVSEC_TRAIN),$(MVSEC_TEST),)
