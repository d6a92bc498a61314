"""License texts to SPDX ids by distinctive phrases; Hub license ids to SPDX spellings."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitbridge.profile.license import (
    identify_license,
    identify_license_file,
    is_license_filename,
    license_ref,
    normalize_license_id,
    spdx_license_id,
)

APACHE_TITLE = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION
"""
APACHE_NOTICE = """Copyright 2024 Example Inc.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0
"""
MIT = """MIT License

Copyright (c) 2021 Someone

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
"""
BSD_HEAD = """Copyright (c) 2020, Example
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.
"""
BSD_ENDORSE = """
3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.
"""
BSD_ADVERTISING = """
3. All advertising materials mentioning features or use of this software must
   display the following acknowledgement: This product includes software developed by Example.
"""
BSD_DISCLAIMER = """
THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES ... ARE DISCLAIMED.
"""
GPL3_TITLE = """                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007

 Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>
 Everyone is permitted to copy and distribute verbatim copies
 of this license document, but changing it is not allowed.

  13. Use with the GNU Affero General Public License.

  Notwithstanding any other provision of this License, you have
permission to link or combine any covered work with a work licensed
under version 3 of the GNU Affero General Public License into a single
combined work, and to convey the resulting work.
"""
GPL3_APPENDIX = """
            How to Apply These Terms to Your New Programs

    This program is free software: you can redistribute it and/or modify
    it under the terms of the GNU General Public License as published by
    the Free Software Foundation, either version 3 of the License, or
    (at your option) any later version.
"""
GPL_OR_LATER_NOTICE = """This program is free software; you can redistribute it and/or modify
it under the terms of the GNU General Public License as published by
the Free Software Foundation; either version 2 of the License, or
(at your option) any later version.
"""
GPL2_ONLY_NOTICE = """This program is free software; you can redistribute it and/or modify it
under the terms of the GNU General Public License version 2 as published by
the Free Software Foundation.
"""
LGPL3 = """                   GNU LESSER GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007

  This version of the GNU Lesser General Public License incorporates
the terms and conditions of version 3 of the GNU General Public
License, supplemented by the additional permissions listed below.
"""
LGPL21 = """                  GNU LESSER GENERAL PUBLIC LICENSE
                       Version 2.1, February 1999
"""
AGPL3 = """                    GNU AFFERO GENERAL PUBLIC LICENSE
                       Version 3, 19 November 2007

  Notwithstanding any other provision of this License, you have
permission to link or combine any covered work with a work licensed
under version 3 of the GNU General Public License into a single
combined work.
"""
MPL2 = """Mozilla Public License Version 2.0
==================================

1. Definitions
"""
MPL2_NOTICE = """This Source Code Form is subject to the terms of the Mozilla Public
License, v. 2.0. If a copy of the MPL was not distributed with this
file, You can obtain one at http://mozilla.org/MPL/2.0/."""
CC_BY = """Attribution 4.0 International

=======================================================================

Creative Commons Corporation ("Creative Commons") is not a law firm and
does not provide legal services or legal advice.

Creative Commons Attribution 4.0 International Public License
"""
CC_BY_SA = "Creative Commons Attribution-ShareAlike 4.0 International Public License\n"
CC_BY_NC = "Creative Commons Attribution-NonCommercial 4.0 International Public License\n"
CC0 = """Creative Commons Legal Code

CC0 1.0 Universal

    CREATIVE COMMONS CORPORATION IS NOT A LAW FIRM AND DOES NOT PROVIDE
    LEGAL SERVICES.
"""
UNLICENSE = """This is free and unencumbered software released into the public domain.

Anyone is free to copy, modify, publish, use, compile, sell, or
distribute this software, either in source code form or as a compiled
binary, for any purpose, commercial or non-commercial, and by any
means.
"""
ISC = """ISC License

Copyright (c) 2004-2010 by Internet Systems Consortium, Inc. ("ISC")

Permission to use, copy, modify, and/or distribute this software for any
purpose with or without fee is hereby granted, provided that the above
copyright notice and this permission notice appear in all copies.
"""
BSL = """Boost Software License - Version 1.0 - August 17th, 2003

Permission is hereby granted, free of charge, to any person or organization
obtaining a copy of the software and accompanying documentation covered by
this license (the "Software") to use, reproduce, display, distribute,
execute, and transmit the Software.
"""
OPENRAIL_M = """CreativeML Open RAIL-M
dated August 22, 2022

Section I: PREAMBLE

Multimodal generative models are being widely adopted and used.
"""
OPENRAIL_PP = """Copyright (c) 2023 Stability AI CreativeML Open RAIL++-M License dated July 26, 2023

Section I: PREAMBLE
"""
LLAMA2 = """LLAMA 2 COMMUNITY LICENSE AGREEMENT
Llama 2 Version Release Date: July 18, 2023

"Agreement" means the terms and conditions for use, reproduction, distribution and
modification of the Llama Materials set forth herein.
"""
LLAMA3 = """META LLAMA 3 COMMUNITY LICENSE AGREEMENT
Meta Llama 3 Version Release Date: April 18, 2024
"""
LLAMA31 = """LLAMA 3.1 COMMUNITY LICENSE AGREEMENT
Llama 3.1 Version Release Date: July 23, 2024
"""
GEMMA = """Gemma Terms of Use

Last modified: February 21, 2024

By using, reproducing, modifying, distributing, performing or displaying any portion or element of
Gemma, Model Derivatives including via any Hosted Service, you agree to be bound by this Agreement.
"""


@pytest.mark.parametrize(
    ("text", "spdx_id"),
    [
        (APACHE_TITLE, "Apache-2.0"),
        (APACHE_NOTICE, "Apache-2.0"),
        (MIT, "MIT"),
        (BSD_HEAD + BSD_DISCLAIMER, "BSD-2-Clause"),
        (BSD_HEAD + BSD_ENDORSE + BSD_DISCLAIMER, "BSD-3-Clause"),
        (BSD_HEAD + BSD_ADVERTISING + BSD_ENDORSE + BSD_DISCLAIMER, "BSD-4-Clause"),
        (GPL3_TITLE, "GPL-3.0-only"),
        (GPL3_TITLE + GPL3_APPENDIX, "GPL-3.0-only"),  # the appendix's sample notice is not this project's
        (GPL3_APPENDIX.split("\n", 2)[2] + GPL3_TITLE + GPL3_APPENDIX, "GPL-3.0-or-later"),
        (GPL_OR_LATER_NOTICE, "GPL-2.0-or-later"),
        (GPL2_ONLY_NOTICE, "GPL-2.0-only"),
        (LGPL3, "LGPL-3.0-only"),
        (LGPL21, "LGPL-2.1-only"),
        (AGPL3, "AGPL-3.0-only"),
        (MPL2, "MPL-2.0"),
        (MPL2_NOTICE, "MPL-2.0"),
        (CC_BY, "CC-BY-4.0"),
        (CC_BY_SA, "CC-BY-SA-4.0"),
        (CC_BY_NC, "CC-BY-NC-4.0"),
        ("This work is licensed under CC BY-NC-SA 4.0.", "CC-BY-NC-SA-4.0"),
        (CC0, "CC0-1.0"),
        (UNLICENSE, "Unlicense"),
        (ISC, "ISC"),
        (ISC.replace("and/or", "and"), "ISC"),  # the older wording
        (BSL, "BSL-1.0"),
        (OPENRAIL_M, "LicenseRef-creativeml-openrail-m"),
        (OPENRAIL_PP, "LicenseRef-openrail-plusplus"),
        (LLAMA2, "LicenseRef-llama2"),
        (LLAMA3, "LicenseRef-llama3"),
        (LLAMA31, "LicenseRef-llama3.1"),
        (GEMMA, "LicenseRef-gemma"),
    ],
)
def test_identify_license(text: str, spdx_id: str) -> None:
    match = identify_license(text)
    assert match is not None
    assert match.spdx_id == spdx_id
    assert 0.5 <= match.confidence <= 0.99
    assert match.phrase and " ".join(match.phrase.split()) == match.phrase


def test_phrase_is_quoted_from_the_input_and_confidence_grows_with_evidence() -> None:
    notice = identify_license(APACHE_NOTICE)
    both = identify_license(APACHE_TITLE + "\n" + APACHE_NOTICE)
    assert notice is not None and both is not None
    assert notice.phrase == "Licensed under the Apache License, Version 2.0"
    assert both.phrase == "Apache License Version 2.0, January 2004"
    assert both.confidence > notice.confidence


def test_reflowed_and_commented_text_still_matches() -> None:
    text = "# Licensed under the Apache\n#   License,\tVersion 2.0 (the 'License');\n"
    match = identify_license(text)
    assert match is not None and match.spdx_id == "Apache-2.0"
    assert match.phrase == "Licensed under the Apache # License, Version 2.0"


def test_mentions_of_other_gnu_licenses_do_not_confuse() -> None:
    gpl = identify_license(GPL3_TITLE)  # names the Affero GPL in section 13
    lgpl = identify_license(LGPL3)  # names the GPL v3
    agpl = identify_license(AGPL3)  # names the GPL v3
    assert (gpl and gpl.spdx_id, lgpl and lgpl.spdx_id, agpl and agpl.spdx_id) == (
        "GPL-3.0-only",
        "LGPL-3.0-only",
        "AGPL-3.0-only",
    )


def test_the_project_license_first_in_the_file_beats_third_party_notices() -> None:
    text = APACHE_NOTICE + "\n\nThird-party code:\n\n" + MIT
    match = identify_license(text)
    assert match is not None and match.spdx_id == "Apache-2.0"


def test_llama_versions_are_not_mixed_up() -> None:
    assert [m.spdx_id for m in map(identify_license, (LLAMA2, LLAMA3, LLAMA31)) if m] == [
        "LicenseRef-llama2",
        "LicenseRef-llama3",
        "LicenseRef-llama3.1",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\n",
        "All rights reserved. Do not copy.",
        "The reopen rails are open for business.",
        "MITIGATION",
    ],
)
def test_unknown_text_is_none(text: str) -> None:
    assert identify_license(text) is None


def test_identify_license_file_reads_a_file_and_fails_soft(tmp_path: Path) -> None:
    (tmp_path / "LICENSE").write_text(MIT)
    match = identify_license_file(tmp_path / "LICENSE")
    assert match is not None and match.spdx_id == "MIT"
    assert identify_license_file(tmp_path / "missing") is None
    (tmp_path / "BIN").write_bytes(b"\xff\xfe\x00garbage\x80")
    assert identify_license_file(tmp_path / "BIN") is None


@pytest.mark.parametrize(
    ("given", "spdx"),
    [
        ("apache-2.0", "Apache-2.0"),
        ("mit", "MIT"),
        ("MIT", "MIT"),
        ("cc-by-4.0", "CC-BY-4.0"),
        ("cc-by-sa-4.0", "CC-BY-SA-4.0"),
        ("cc-by-nc-4.0", "CC-BY-NC-4.0"),
        ("cc0-1.0", "CC0-1.0"),
        ("bsd-3-clause", "BSD-3-Clause"),
        ("bsl-1.0", "BSL-1.0"),
        ("mpl-2.0", "MPL-2.0"),
        ("unlicense", "Unlicense"),
        ("isc", "ISC"),
        ("gpl-3.0", "GPL-3.0-only"),
        ("lgpl-2.1", "LGPL-2.1-only"),
        ("agpl-3.0", "AGPL-3.0-only"),
        ("GPL-3.0-or-later", "GPL-3.0-or-later"),
        ("odbl", "ODbL-1.0"),
        ("openrail", "LicenseRef-openrail"),
        ("openrail++", "LicenseRef-openrail-plusplus"),
        ("creativeml-openrail-m", "LicenseRef-creativeml-openrail-m"),
        ("llama2", "LicenseRef-llama2"),
        ("llama3.1", "LicenseRef-llama3.1"),
        ("gemma", "LicenseRef-gemma"),
        (" Apache-2.0 ", "Apache-2.0"),
        ("LicenseRef-Custom", "LicenseRef-Custom"),
        ("other", "other"),
        ("unknown", "unknown"),
        ("my-own-license", "my-own-license"),
    ],
)
def test_normalize_license_id(given: str, spdx: str) -> None:
    assert normalize_license_id(given) == spdx


def test_spdx_license_id_is_none_for_ids_it_does_not_know() -> None:
    assert spdx_license_id("other") is None
    assert spdx_license_id("my-own-license") is None
    assert spdx_license_id("LicenseRef-bad id") is None
    assert spdx_license_id("apache-2.0") == "Apache-2.0"


def test_license_ref_makes_a_valid_idstring() -> None:
    assert license_ref("Acme Model License (v1.2)") == "LicenseRef-Acme-Model-License-v1.2"
    assert license_ref("!!!") is None


@pytest.mark.parametrize(
    ("name", "is_license"),
    [
        ("LICENSE", True),
        ("LICENSE.md", True),
        ("LICENCE.txt", True),
        ("license", True),
        ("COPYING", True),
        ("COPYING.LESSER", True),
        ("LICENSE-MIT", True),
        ("UNLICENSE", True),
        ("license.py", False),
        ("licenses.json", False),
        ("README.md", False),
        ("my_license", False),
    ],
)
def test_is_license_filename(name: str, is_license: bool) -> None:
    assert is_license_filename(name) is is_license
