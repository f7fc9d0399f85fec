# Copyright (c) finers_mm contributors. All rights reserved.
"""Images stored inside a table (a TSV with base64 images, a parquet file), read one at a time.

HR-Bench ships its images inside the question table (``hr_bench_8k.tsv`` is 4.6 GB of base64).
The dataset never holds that file: it indexes it once (the byte span of each row) and names each
image by a URI that mmengine's file I/O resolves through a storage backend registered here, so
the pipeline's one image reader (``LoadFineRSImage`` -> ``mmengine.fileio.get`` ->
:func:`~finers_mm.datasets.image_files.decode_image`) loads it unchanged, in the dataloader
worker, only when the sample is drawn:

- ``tsv-image://<file>?offset=<byte>&length=<bytes>&column=<i>&row=<n>``: read those bytes, parse
  the row (tab-separated, quoted fields as pandas writes them), base64-decode column ``i``;
- ``parquet-image://<file>?row_group=<g>&row=<k>&column=<name>``: row ``k`` of row group ``g``
  (pyarrow reads that row group's image column and keeps only the last one read: sequential
  evaluation reads each row group once; memory: one row group's images). A value may be a base64
  string, raw bytes or a Hugging Face ``Image`` struct ``{'bytes': ..., 'path': ...}``.

An undecodable base64 field raises :class:`LazyImageError` naming the file, the row and the fix
when the image is decoded (it cannot be found earlier without decoding every image at load).
"""
import base64
import binascii
import csv
import io
import os.path as osp
import sys
from typing import Dict, List, NamedTuple, Optional, Tuple, Union
from urllib.parse import parse_qs

from mmengine.fileio import register_backend
from mmengine.fileio.backends import BaseStorageBackend

TSV_PREFIX = 'tsv-image'
PARQUET_PREFIX = 'parquet-image'
_REDOWNLOAD = 'download the benchmark file again (the copy is damaged or not the published one)'


class LazyImageError(ValueError):
    """An image field of a table that cannot be used (names the file, the row and the fix)."""


#: an image field this short is kept by :func:`index_tsv` (VLMEvalKit: another row's index)
SHORT_IMAGE_FIELD = 64


class TSVRow(NamedTuple):
    """One TSV record: its fields (the image column left out), the byte span of the row, and the
    image field itself when it is at most :data:`SHORT_IMAGE_FIELD` characters (else None)."""
    fields: Dict[str, str]
    offset: int
    length: int
    short_image: Optional[str]


def _parse_record(record: bytes) -> List[str]:
    """The fields of one TSV record (quoted fields as pandas / csv write them)."""
    text = record.decode('utf-8')
    if '"' not in text:
        return text.rstrip('\r\n').split('\t')
    limit = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)  # a base64 image is far beyond csv's 128 KB default
    try:
        return next(csv.reader(io.StringIO(text), delimiter='\t'))
    finally:
        csv.field_size_limit(limit)


def index_tsv(path: str, image_column: str = 'image') -> Tuple[List[str], List[TSVRow]]:
    """Read a TSV once, keeping every field but the images and the byte span of each row.

    A record spans several lines when a quoted field holds a line break (an odd count of ``"``
    so far). Memory: one row at a time, whatever the file size.

    Args:
        path (str): the TSV file.
        image_column (str): the column of base64 images, left out of ``fields``.

    Returns:
        tuple[list[str], list[TSVRow]]: the header and the rows, in file order.

    Raises:
        LazyImageError: the file has no header, or a row has another number of fields.
    """
    rows: List[TSVRow] = []
    with open(path, 'rb') as f:
        header_line = f.readline()
        if not header_line.strip():
            raise LazyImageError(f'{path}: empty TSV (no header line). Fix: {_REDOWNLOAD}')
        header = _parse_record(header_line)
        offset = len(header_line)
        record, start, quotes = b'', offset, 0
        for line in f:
            if not record:
                start = offset
            record += line
            quotes += line.count(b'"')
            offset += len(line)
            if quotes % 2:
                continue  # inside a quoted field: the record goes on
            if record.strip():
                fields = _parse_record(record)
                if len(fields) != len(header):
                    raise LazyImageError(
                        f'{path}, row {len(rows)} (byte {start}): {len(fields)} fields, the header '
                        f'has {len(header)}. Fix: {_REDOWNLOAD}')
                image = dict(zip(header, fields)).get(image_column, '').strip()
                rows.append(TSVRow({k: v for k, v in zip(header, fields) if k != image_column},
                                   start, len(record),
                                   image if len(image) <= SHORT_IMAGE_FIELD else None))
            record, quotes = b'', 0
    return header, rows


def tsv_image_uri(path: str, offset: int, length: int, column: int, row: int) -> str:
    """The URI of the base64 image in column ``column`` of the row at ``offset``.

    Args:
        path (str): the TSV file (made absolute).
        offset (int): the row's first byte.
        length (int): the row's bytes.
        column (int): the image column's index.
        row (int): the row's index (0 = first row after the header), for messages.

    Returns:
        str: ``tsv-image://...``.
    """
    return (f'{TSV_PREFIX}://{osp.abspath(path)}?offset={offset}&length={length}'
            f'&column={column}&row={row}')


def parquet_image_uri(path: str, row_group: int, row: int, column: str) -> str:
    """The URI of row ``row`` of row group ``row_group``'s image column of a parquet file."""
    return f'{PARQUET_PREFIX}://{osp.abspath(path)}?row_group={row_group}&row={row}&column={column}'


def _split_uri(uri: str, prefix: str) -> Tuple[str, Dict[str, str]]:
    """(file path, query parameters) of a lazy image URI."""
    body = str(uri)[len(prefix) + 3:]
    path, _, query = body.rpartition('?')
    return path, {key: values[0] for key, values in parse_qs(query).items()}


def decode_base64_image(text: Union[str, bytes], where: str) -> bytes:
    """Strict base64 -> the image file's bytes.

    Args:
        text (str | bytes): the base64 field.
        where (str): the file and row, for the message.

    Returns:
        bytes: the image file.

    Raises:
        LazyImageError: not base64 (or empty).
    """
    try:
        content = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise LazyImageError(
            f'{where}: the image field is not valid base64 ({error}). Fix: {_REDOWNLOAD}, or '
            're-encode that row\'s image with base64.b64encode') from None
    if not content:
        raise LazyImageError(f'{where}: the image field is empty. Fix: {_REDOWNLOAD}')
    return content


class TSVImageBackend(BaseStorageBackend):
    """mmengine storage backend of ``tsv-image://`` URIs (module docstring)."""

    def get(self, filepath: str) -> bytes:
        """The image file's bytes of one TSV row.

        Args:
            filepath (str): a ``tsv-image://`` URI (:func:`tsv_image_uri`).

        Returns:
            bytes: the decoded image file (JPEG, PNG, ...).
        """
        path, query = _split_uri(filepath, TSV_PREFIX)
        where = f"{path}, row {query.get('row')}"
        with open(path, 'rb') as f:
            f.seek(int(query['offset']))
            record = f.read(int(query['length']))
        fields = _parse_record(record)
        column = int(query['column'])
        if column >= len(fields):
            raise LazyImageError(f'{where}: the row has no column {column}: the file changed '
                                 'after the dataset indexed it. Fix: rebuild the dataset')
        return decode_base64_image(fields[column], where)

    def get_text(self, filepath: str, encoding: str = 'utf-8') -> str:
        raise NotImplementedError(f'{filepath}: a TSV image is binary')


class ParquetImageBackend(BaseStorageBackend):
    """mmengine storage backend of ``parquet-image://`` URIs (module docstring); keeps the image
    column of the last row group read."""

    def __init__(self) -> None:
        self._cached: Optional[tuple] = None  # ((path, row_group, column), pyarrow array)

    def get(self, filepath: str) -> bytes:
        """The image file's bytes of one parquet row.

        Args:
            filepath (str): a ``parquet-image://`` URI (:func:`parquet_image_uri`).

        Returns:
            bytes: the decoded image file.
        """
        import pyarrow.parquet as pq
        path, query = _split_uri(filepath, PARQUET_PREFIX)
        key = (path, int(query['row_group']), query['column'])
        if self._cached is None or self._cached[0] != key:
            self._cached = None  # free the previous row group before reading the next
            table = pq.ParquetFile(path).read_row_group(key[1], columns=[key[2]])
            self._cached = (key, table.column(0))
        value = self._cached[1][int(query['row'])].as_py()
        where = f"{path}, row group {key[1]}, row {query['row']}"
        if isinstance(value, dict):
            value = value.get('bytes')
        if isinstance(value, str):
            return decode_base64_image(value, where)
        if isinstance(value, (bytes, bytearray)) and value:
            return bytes(value)
        raise LazyImageError(f'{where}: the image field is {type(value).__name__}, not a base64 '
                             f'string, bytes or an image struct. Fix: {_REDOWNLOAD}')

    def get_text(self, filepath: str, encoding: str = 'utf-8') -> str:
        raise NotImplementedError(f'{filepath}: a parquet image is binary')


register_backend(TSV_PREFIX, TSVImageBackend, force=True, prefixes=TSV_PREFIX)
register_backend(PARQUET_PREFIX, ParquetImageBackend, force=True, prefixes=PARQUET_PREFIX)
