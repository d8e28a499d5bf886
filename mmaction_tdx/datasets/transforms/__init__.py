# Copyright (c) mmaction_tdx contributors. All rights reserved.
