"""timm's model families, one map each: the ``timm`` map reads which one a checkpoint is from its keys
(:class:`archdsl.weights.maps.TimmMap`) and names the tensors of every part through that family's map."""
