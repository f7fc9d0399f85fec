"""Write authors_prompts.json: the prompts the authors' own code builds (not a test; run by hand).

Runs the prompt-building code of JiazuoYu/Fines itself (``reform_messgae_HR`` / ``reform_messgae_LR``
of the evaluation script, ``RLHFDataset.__getitem__`` of ``verl/utils/rl_dataset.py`` and
``rl_dataset_lr.py``), extracted with ``ast`` and executed with stand-ins for the image, the dataset
loader and the tokenizer, on a grid of questions and options. The tests compare finers_mm's
'authors' prompts with these texts byte for byte.

    python tests/data/authors_protocol/generate_prompts.py /path/to/Fines   # a checkout
"""
import ast
import itertools
import json
import os.path as osp
import sys

QUESTIONS = ['What color is the car parked near the tree?', '  the Small boat.. ',
             "Segment the person's red umbrella.", 'Which Sign IS it?']
OPTIONS = {
    'list': ['A. red', 'B. white', 'C. blue', 'D. black'],
    'dict': {'A': 'red', 'B': 'white', 'C': 'blue', 'D': 'black'},
    'str': 'A. red B. white C. blue D. black',
}
QTYPES = ('referring', 'option', 'reasoning')


class _Image:
    """Stands for a PIL image: the prompts only resize it."""

    def resize(self, *args, **kwargs):
        return self


class _Stop(Exception):
    pass


class _Tokenizer:
    """Records the messages ``__getitem__`` renders, then stops it."""

    def apply_chat_template(self, messages, **kwargs):
        self.messages = messages
        raise _Stop


def _functions(source: str, names) -> str:
    tree = ast.parse(source)
    nodes = [node for node in tree.body if getattr(node, 'name', None) in names]
    return '\n\n'.join(ast.get_source_segment(source, node) for node in nodes)


def _eval_prompts(repo: str):
    path = osp.join(repo, 'inference_scripts',
                    'eval_hd_reasoning_seg_zero_cascade_qa_add_dist_for_region_prompt_cross_stage.py')
    namespace = {'PILImage': type('PILImage', (), {'BILINEAR': 2})}
    exec(_functions(open(path).read(), {'reform_messgae_HR', 'reform_messgae_LR'}), namespace)
    rows = []
    for stage, function in (('explorer', 'reform_messgae_HR'), ('refiner', 'reform_messgae_LR')):
        for qtype, question, (kind, options) in itertools.product(QTYPES, QUESTIONS,
                                                                  OPTIONS.items()):
            if qtype != 'option' and kind != 'list':
                continue
            message = namespace[function](True, question, qtype,
                                          options if qtype == 'option' else None, _Image(),
                                          (1920, 1080))
            content = message[0]['content']
            assert [part['type'] for part in content] == ['image', 'text']
            rows.append(dict(stage=stage, phase='test', qtype=qtype, question=question,
                             options=options if qtype == 'option' else None,
                             messages_roles=[m['role'] for m in message],
                             text=content[1]['text']))
    return rows


def _train_prompts(repo: str):
    rows = []
    for stage, name, cls in (('explorer', 'rl_dataset.py', 'RLHFDataset'),
                             ('refiner', 'rl_dataset_lr.py', 'RLHFDatasetLR')):
        source = open(osp.join(repo, 'verl', 'utils', name)).read()
        for qtype, question, (kind, options) in itertools.product(QTYPES, QUESTIONS,
                                                                  OPTIONS.items()):
            if qtype != 'option' and kind != 'list':
                continue
            row = dict(type=qtype, problem=question, options=options if qtype == 'option' else None)
            namespace = {'Dataset': object, 'load_dataset': lambda *a, **k: {'train': [row]},
                         'Optional': __import__('typing').Optional, 'ProcessorMixin': object,
                         'PreTrainedTokenizer': object, 'Dict': __import__('typing').Dict,
                         'Any': __import__('typing').Any, 'List': __import__('typing').List,
                         'DataProto': object}
            exec(_functions(source, {cls}), namespace)
            tokenizer = _Tokenizer()
            dataset = namespace[cls](
                **({'unified_qa_model': True} if 'unified_qa_model' in source else {}),
                data_path='x', tokenizer=tokenizer, processor=None,
                system_prompt='You are a helpful assistant.')
            try:
                dataset[0]
            except _Stop:
                pass
            messages = tokenizer.messages
            rows.append(dict(stage=stage, phase='train', qtype=qtype, question=question,
                             options=row['options'], messages_roles=[m['role'] for m in messages],
                             system=messages[0]['content'], text=messages[1]['content']))
    return rows


def main(repo: str) -> None:
    rows = _eval_prompts(repo) + _train_prompts(repo)
    out = osp.join(osp.dirname(osp.abspath(__file__)), 'authors_prompts.json')
    with open(out, 'w') as f:
        json.dump(dict(source='JiazuoYu/Fines', prompts=rows), f, indent=1, ensure_ascii=False)
    print(f'{len(rows)} prompts -> {out}')


if __name__ == '__main__':
    main(sys.argv[1])
