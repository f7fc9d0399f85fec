# Copyright (c) finers_mm contributors. All rights reserved.
"""FineRSInferencer: ask a question about an image, get the answer, the reasoning and the mask."""
import copy
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform, Compose
from mmdet.structures import DetDataSample
from mmengine.infer import BaseInferencer
from mmengine.registry import init_default_scope

from finers_mm.datasets.transforms import LoadFineRSImage
from finers_mm.registry import TRANSFORMS
from finers_mm.structures.vocabulary import (QTYPE_FROM_ANNOTATION, QUESTION_TYPES, SEGMENTATION,
                                             normalize_options)
from finers_mm.utils.checkpoint_guard import check_checkpoint_fits
from finers_mm.utils.fileio import write_image_atomic, write_json_atomic
from finers_mm.utils.frames_config import apply_frames
from finers_mm.utils.run_config import load_config

#: pipeline steps that need annotations (GT mask, GT points) and are dropped for free inputs
GT_ONLY_TRANSFORMS = ('LoadFineRSMask', 'SampleGTPoints')
LOAD_TRANSFORM = 'LoadFineRSImage'

InputType = Union[dict, str]


class FineRSInferencer(BaseInferencer):
    """mmdet ``DetInferencer``-style inference with a FineRS config.

    An input is a dict ``dict(img=PATH_OR_RGB_ARRAY, question=..., question_type='segmentation',
    options=None)``; ``question_type`` takes finers_mm's names or the annotation's (``'referring'``,
    ``'option'``, ``'reasoning'``), ``options`` any form of the ``options`` field. Inputs run
    through the config's test pipeline (without its GT-only steps) and the model's ``test_step``.
    An image file is read by the pipeline's own ``LoadFineRSImage`` (the one reader of
    ``tools/test.py`` and training: EXIF orientation applied, 16-bit scaled to 8 bits); an array
    is taken as RGB.

    Outputs (``out_dir``) are written atomically (:mod:`finers_mm.utils.fileio`): a drawing, a mask
    or a prediction file is complete or absent, never truncated; the prediction JSON is strict (no
    ``NaN`` / ``Infinity``).

    Example::

        inferencer = FineRSInferencer('configs/finers/finers_tiny_test.py')
        result = inferencer(dict(img='demo.jpg', question='Where is the red car?',
                                 question_type='open'), out_dir='outputs')
        result['predictions'][0]['answer']

    Args:
        model (str | Config): the config (file) of a FineRS model; its ``frames`` are applied
            to the pipeline and the model, as the tools apply them
            (:func:`~finers_mm.utils.run_config.load_config`).
        weights (str, optional): an mmengine checkpoint of the config's model; None uses the
            weights the config loads (its local Hugging Face and SAM checkpoints). One that fits
            no part of the model (e.g. a stage's) is refused, naming the fix.
        device (str, optional): e.g. ``'cuda:0'``; None picks the available device.
        scope (str): the registry scope. Defaults to ``'finers_mm'``.
        show_progress (bool): a progress bar over the inputs.
    """

    visualize_kwargs = {'show', 'wait_time', 'draw_pred', 'img_out_dir'}
    postprocess_kwargs = {'pred_out_dir', 'print_result'}

    def __init__(self, model, weights: Optional[str] = None, device: Optional[str] = None,
                 scope: str = 'finers_mm', show_progress: bool = True) -> None:
        init_default_scope(scope)
        self._weights_file = weights
        # the config's `frames` reach the pipeline and the model (finers_mm's config loader)
        if isinstance(model, str):
            model = load_config(model)
        else:
            model = copy.deepcopy(model)
            apply_frames(model)
        super().__init__(model=model, weights=weights, device=device, scope=scope,
                         show_progress=show_progress)

    def _load_weights_to_model(self, model, checkpoint, cfg) -> None:
        """Load an mmengine checkpoint if given; otherwise keep the weights the config loaded.

        Raises:
            ValueError: the checkpoint supplies (almost) none of the model's weights.
        """
        if checkpoint is not None:
            check_checkpoint_fits(model, checkpoint, self._weights_file)
            super()._load_weights_to_model(model, checkpoint, cfg)

    def _init_visualizer(self, cfg):
        """The config's visualiser without storage backends: the inferencer writes files itself."""
        cfg = cfg.copy()
        if cfg.get('visualizer', None) is not None:
            cfg.visualizer = dict(cfg.visualizer, vis_backends=None)
        return super()._init_visualizer(cfg)

    def _init_pipeline(self, cfg):
        """The test pipeline without loading and GT steps, after :func:`_load_input` (which reads
        a file with the pipeline's own ``LoadFineRSImage``)."""
        pipeline = cfg.test_dataloader.dataset.pipeline
        loads = [step for step in pipeline if step['type'] == LOAD_TRANSFORM]
        self.image_loader = TRANSFORMS.build(loads[0]) if loads else LoadFineRSImage()
        rest = Compose([step for step in pipeline
                        if step['type'] not in GT_ONLY_TRANSFORMS + (LOAD_TRANSFORM, )])
        return lambda item: rest(_load_input(item, self.image_loader))

    def __call__(self, inputs: Union[InputType, Sequence[InputType]], batch_size: int = 1,
                 out_dir: str = '', show: bool = False, wait_time: float = 0,
                 draw_pred: bool = True, print_result: bool = False,
                 return_datasamples: bool = False) -> dict:
        """Run inference.

        Args:
            inputs (dict | list[dict]): see the class docstring.
            batch_size (int): samples per batch (each stage runs batched).
            out_dir (str): where drawings (``vis/``), masks (``masks/``) and predictions
                (``preds/``) go; empty: nothing is written.
            show (bool): show the drawings in a window.
            wait_time (float): seconds a shown drawing stays.
            draw_pred (bool): draw the predictions.
            print_result (bool): print each prediction dict.
            return_datasamples (bool): return ``DetDataSample`` s instead of dicts.

        Returns:
            dict: ``predictions`` (list of dicts, see :meth:`pred2dict`) and ``visualization``
            (list of drawn RGB arrays, or None).
        """
        return super().__call__(
            inputs, return_datasamples=return_datasamples, batch_size=batch_size, show=show,
            wait_time=wait_time, draw_pred=draw_pred, print_result=print_result,
            img_out_dir=osp.join(out_dir, 'vis') if out_dir else '',
            pred_out_dir=out_dir)

    def visualize(self, inputs: List[InputType], preds: List[DetDataSample], show: bool = False,
                  wait_time: float = 0, draw_pred: bool = True,
                  img_out_dir: str = '') -> Optional[List[np.ndarray]]:
        """Draw each prediction with the config's visualiser (``FineRSVisualizer``).

        Each drawing is saved (atomically) as ``img_out_dir/<index>_<image stem>.jpg``; with
        ``FineRSVisualizer``, ``self.visualizer.layout`` describes the last one (panels, what was
        drawn clipped).

        Args:
            inputs (list[dict]): the inputs, as given to :meth:`__call__`.
            preds (list[DetDataSample]): their predictions.
            show (bool): show each drawing in a window.
            wait_time (float): seconds a shown drawing stays.
            draw_pred (bool): draw the predictions (False: the image and question only).
            img_out_dir (str): where drawings go; empty: not saved.

        Returns:
            list[np.ndarray] | None: drawn (h, w, 3) RGB images; None when nothing is drawn or
            shown.
        """
        if not show and not img_out_dir:
            return None
        drawings = []
        for index, (item, pred) in enumerate(zip(inputs, preds)):
            image = _load_input(item, self.image_loader)['img']
            name = _sample_name(item, index)
            self.visualizer.add_datasample(name, image, pred, draw_gt=False, draw_pred=draw_pred,
                                           show=show, wait_time=wait_time)
            drawing = self.visualizer.get_image()
            if img_out_dir:
                write_image_atomic(osp.join(img_out_dir, f'{name}.jpg'), drawing)
            drawings.append(drawing)
        return drawings

    def postprocess(self, preds: List[DetDataSample], visualization: Optional[List[np.ndarray]],
                    return_datasamples: bool = False, pred_out_dir: str = '',
                    print_result: bool = False) -> dict:
        """Turn predictions into dicts; with ``pred_out_dir`` save each mask and prediction
        (atomically; the prediction as strict JSON)."""
        results = []
        for index, pred in enumerate(preds):
            result = self.pred2dict(pred)
            if pred_out_dir:
                name = _sample_name(dict(img=pred.get('img_path', None)), index)
                result['mask_file'] = self._save_mask(pred, osp.join(pred_out_dir, 'masks',
                                                                     f'{name}.png'))
                write_json_atomic(osp.join(pred_out_dir, 'preds', f'{name}.json'), result,
                                  indent=2)
            if print_result:
                print(result)
            results.append(result)
        return dict(predictions=preds if return_datasamples else results,
                    visualization=visualization)

    @staticmethod
    def pred2dict(pred: DetDataSample) -> Dict:
        """A JSON-friendly view of one prediction, ORIGINAL pixels throughout.

        Returns:
            dict: ``question``, ``answer``, ``invalid_reason``, ``region``, ``crop_window``,
            ``bbox``, ``points``, ``score`` (None / [] when the chain produced nothing) and the
            ``explorer_completion`` / ``refiner_completion`` texts (the reasoning).
        """
        instances = pred.pred_instances
        found = len(instances) > 0
        return dict(
            question=pred.get('question', None),
            answer=pred.get('pred_answer', ''),
            invalid_reason=pred.get('invalid_reason', None),
            region=_as_list(pred.get('pred_region', None)),
            crop_window=_as_list(pred.get('pred_window', None)),
            bbox=instances.bboxes[0].tolist() if found else None,
            points=instances.points[0].tolist() if found and 'points' in instances else None,
            score=float(instances.scores[0]) if found else None,
            explorer_completion=pred.get('explorer_completion', None),
            refiner_completion=pred.get('refiner_completion', None))

    @staticmethod
    def _save_mask(pred: DetDataSample, path: str) -> str:
        """Save the full-size mask (white object on black; all black when empty) as a PNG."""
        height, width = pred.ori_shape[:2]
        masks = pred.pred_instances.get('masks', None)
        mask = np.zeros((height, width), bool)
        if masks is not None and len(masks):
            mask = masks.cpu().numpy().any(axis=0)
        write_image_atomic(path, mask.astype(np.uint8) * 255)
        return path


def _load_input(item: InputType, image_loader: BaseTransform) -> dict:
    """The pipeline's starting dict for one input: the RGB image and the query.

    Args:
        item (dict): an input (see :class:`FineRSInferencer`).
        image_loader (BaseTransform): the pipeline's ``LoadFineRSImage``, which reads a file.

    Returns:
        dict: the image (ORIGINAL pixels, (H, W, 3) RGB) with its path and sizes, the question,
        its type and options.
    """
    if isinstance(item, str):
        raise TypeError('a FineRS input needs a question: pass dict(img=..., question=..., '
                        "question_type=...), not only an image path")
    image = item['img']
    if isinstance(image, str):
        if not osp.isfile(image):
            raise FileNotFoundError(f'image {image!r} does not exist')
        img_path, image = image, image_loader(dict(img_path=image))['img']
    else:
        img_path, image = None, np.ascontiguousarray(image)
    question_type = QTYPE_FROM_ANNOTATION.get(item.get('question_type', SEGMENTATION),
                                              item.get('question_type', SEGMENTATION))
    if question_type not in QUESTION_TYPES:
        raise ValueError(f"unknown question_type {item.get('question_type')!r}; use one of "
                         f'{QUESTION_TYPES} or {tuple(QTYPE_FROM_ANNOTATION)}')
    height, width = image.shape[:2]
    return dict(img=image, img_path=img_path, img_id=img_path or 'array', ori_shape=(height, width),
                img_shape=(height, width), height=height, width=width,
                question=item['question'], question_type=question_type,
                options=normalize_options(item.get('options', None)),
                options_raw=item.get('options', None), sample_idx=0)


def _sample_name(item: InputType, index: int) -> str:
    """File stem for an input's outputs: the image name, or the input's index."""
    path = item.get('img') if isinstance(item, dict) else None
    stem = osp.splitext(osp.basename(path))[0] if isinstance(path, str) else 'image'
    return f'{index:04d}_{stem}'


def _as_list(value) -> Optional[list]:
    """An array-like as a plain list; None stays None."""
    return None if value is None else np.asarray(value, dtype=float).tolist()
