# Copyright (c) finers_mm contributors. All rights reserved.
"""Draw test predictions one file per SAMPLE (several FineRS questions share one image)."""
import os.path as osp
from typing import Sequence

from mmdet.engine.hooks import DetVisualizationHook
from mmdet.structures import DetDataSample
from mmengine.fileio import get
from mmengine.runner import Runner
from mmengine.utils import mkdir_or_exist

from finers_mm.datasets import decode_image
from finers_mm.registry import HOOKS


@HOOKS.register_module()
class FineRSVisualizationHook(DetVisualizationHook):
    """mmdet's visualisation hook, with test drawings named ``<image stem>_<ann_index>.jpg``.

    mmdet names a test drawing after its image, so the drawings of the questions about one image
    overwrite each other; FineRS-4k asks ~2.7 questions per image. Everything else (``draw``,
    ``show``, ``test_out_dir``, the validation drawings) is mmdet's; ``tools/test.py --show-dir``
    switches it on as usual.
    """

    def after_test_iter(self, runner: Runner, batch_idx: int, data_batch: dict,
                        outputs: Sequence[DetDataSample]) -> None:
        """Draw every sample of a test batch.

        Args:
            runner (Runner): the test runner.
            batch_idx (int): index of the batch in the test loop.
            data_batch (dict): the batch from the dataloader.
            outputs (Sequence[DetDataSample]): the batch's predictions.
        """
        if self.draw is False:
            return
        if self.test_out_dir is not None:
            self.test_out_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
            mkdir_or_exist(self.test_out_dir)
        for data_sample in outputs:
            self._test_index += 1
            # the pixels the pipeline read (as displayed, RGB): one image reader for every tool
            image = decode_image(get(data_sample.img_path, backend_args=self.backend_args),
                                 data_sample.img_path)
            name = f"{osp.splitext(osp.basename(data_sample.img_path))[0]}_" \
                   f"{data_sample.get('ann_index', self._test_index)}.jpg"
            self._visualizer.add_datasample(
                name, image, data_sample=data_sample, show=self.show, wait_time=self.wait_time,
                pred_score_thr=self.score_thr,
                out_file=None if self.test_out_dir is None else osp.join(self.test_out_dir, name),
                step=self._test_index)
