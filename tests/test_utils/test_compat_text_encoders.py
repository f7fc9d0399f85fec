# Copyright (c) finers_mm contributors. All rights reserved.
"""patch_mmdet_text_encoders: mmdet 3.3's BERT text encoder (Grounding DINO, GLIP) on
transformers 5, patched on one detector's instances only (a tiny local BERT, no download)."""
import string

import pytest
import torch

from finers_mm.utils.compat import patch_mmdet_text_encoders

#: WordPiece vocabulary of the tiny BERT: special tokens, punctuation, characters and suffixes
VOCAB = (['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + list('.?,') +
         list(string.ascii_lowercase) + ['##' + c for c in string.ascii_lowercase])
CAPTIONS = ['a red car.', 'the boat near the bridge.']


@pytest.fixture(scope='module')
def bert_dir(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizerFast
    out = str(tmp_path_factory.mktemp('bert_tiny'))
    BertTokenizerFast(vocab={token: i for i, token in enumerate(VOCAB)},
                      do_lower_case=True).save_pretrained(out)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=64), add_pooling_layer=False).save_pretrained(out)
    return out


def _language_model(bert_dir):
    """mmdet's BertModel as Grounding DINO configures it (sub-sentence masks: 3D)."""
    from mmdet.models.language_models import BertModel
    return BertModel(name=bert_dir, max_tokens=16, pad_to_max=False,
                     use_sub_sentence_represent=True, special_tokens_list=['[CLS]', '[SEP]', '.'])


def test_text_encoder_runs_after_the_patch_with_transformers_4_masks(bert_dir):
    detector = torch.nn.ModuleDict(dict(language_model=_language_model(bert_dir))).eval()
    other = _language_model(bert_dir).eval()
    with pytest.raises(AttributeError, match='batch_encode_plus'):
        detector['language_model'](CAPTIONS)  # why the patch exists
    patch_mmdet_text_encoders(detector)
    with torch.no_grad():
        features = detector['language_model'](CAPTIONS)
    assert features['embedded'].shape[-1] == 32 and features['masks'].dim() == 3

    # a 3D mask repeating the 2D padding mask on every row attends exactly like the 2D mask
    encoder = detector['language_model'].language_backbone.body
    tokens = detector['language_model'].tokenizer(CAPTIONS, padding='longest',
                                                  return_tensors='pt')
    mask_2d = tokens['attention_mask']
    mask_3d = mask_2d[:, None, :].expand(-1, mask_2d.shape[1], -1)
    with torch.no_grad():
        hidden = [encoder(dict(input_ids=tokens['input_ids'], attention_mask=mask,
                               position_ids=None, token_type_ids=None))['hidden']
                  for mask in (mask_2d, mask_3d)]
    torch.testing.assert_close(hidden[1], hidden[0])

    # only the detector's own instances: another text encoder and the classes are untouched
    assert not hasattr(other.tokenizer, 'batch_encode_plus')
    assert not hasattr(type(other.tokenizer), 'batch_encode_plus')
    assert 'forward' not in vars(other.language_backbone.body.model)
    assert 'forward' in vars(encoder.model)
