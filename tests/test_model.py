"""REGNN model: shapes, invertibility of the reversible GNN, the Lipschitz bound, edges and ActNorm."""

from __future__ import annotations

import pytest
import torch

from regnn.model.cognitive import CognitiveProcessor, EdgeLayer, normalise_edges
from regnn.model.perceptual import PerceptualProcessor, sinusoidal_positions
from regnn.model.regnn import REGNN
from regnn.model.reversible_gnn import ActNorm, GraphAttention, InverseError, ReversibleGNN
from regnn.settings import resolve_model_settings

SMALL = {"perceptual": {"dim": 16, "heads": 2, "layers": 1, "output_dim": 16}, "cognitive": {"edge_channels": 3},
         "gnn": {"width": 12}}


def _edges(batch: int, window: int = 50, channels: int = 3) -> torch.Tensor:
    return EdgeLayer(window, channels)(torch.randn(batch, 25, window))


def test_paper_model_shapes_and_size():
    torch.manual_seed(0)
    model = REGNN(768, 128)
    params = sum(p.numel() for p in model.parameters())
    assert 2.0e6 < params < 2.4e6  # the paper's ~2.2 M
    mu, edge = model.perceive(torch.randn(2, 50, 768), torch.randn(2, 50, 128))
    assert mu.shape == (2, 25, 50) and edge.shape == (2, 8, 25, 25)
    codes, logdet = model.encode(torch.rand(6, 50, 25), edge.repeat_interleave(3, dim=0))
    assert codes.shape == (6, 25, 50) and logdet is None
    assert model.decode(codes, edge.repeat_interleave(3, dim=0)).shape == (6, 50, 25)


def test_wav2vec_variant_projects_audio():
    model = REGNN(768, 768, {"perceptual": {"dim": 32, "heads": 8, "layers": 1, "output_dim": 24}, "gnn": {"width": 64}})
    assert isinstance(model.perceptual.proj_audio, torch.nn.Conv1d)
    mu, _ = model.perceive(torch.randn(1, 50, 768), torch.randn(1, 50, 768))
    assert mu.shape == (1, 25, 50)


def test_unknown_setting_is_rejected():
    with pytest.raises(ValueError, match="model.gnn.widht"):
        resolve_model_settings({"gnn": {"widht": 3}})


def test_inverse_reproduces_input():
    torch.manual_seed(1)
    gnn = ReversibleGNN(layers=3, window=50, width=20, edge_channels=3)
    x = torch.rand(8, 25, 50)
    edge = _edges(8)
    y, _ = gnn(x, edge)
    assert (y - x).abs().max() > 1e-2  # the map is not the identity
    assert torch.allclose(gnn.inverse(y, edge), x, atol=1e-4)


def test_inverse_reports_non_convergence():
    torch.manual_seed(2)
    gnn = ReversibleGNN(layers=1, window=50, width=20, edge_channels=3, inverse_iters=1, inverse_tol=1e-9)
    edge = _edges(2)
    y, _ = gnn(torch.rand(2, 25, 50), edge)
    with pytest.raises(InverseError, match="inverse_iters"):
        gnn.inverse(y, edge)


@pytest.mark.parametrize("weight_scale", [1.0, 10.0, 100.0])
def test_residual_branch_is_a_contraction(weight_scale):
    torch.manual_seed(3)
    window = 6
    f = GraphAttention(window, width=8, edge_channels=3)
    with torch.no_grad():
        f.qk.weight.mul_(weight_scale)
        f.qk.bias.mul_(weight_scale)
    edge = _edges(1, window)
    norm = f.lipschitz_norm()
    for _ in range(2):
        x = 3 * torch.randn(1, 25, window)
        jac = torch.autograd.functional.jacobian(lambda v: f(v, edge), x, vectorize=True)
        jac = jac.reshape(25 * window, 25 * window)
        lipschitz = torch.linalg.matrix_norm(jac, ord=2)
        assert lipschitz < 1.0
        # the bound comes from the normaliser: without it the branch is exactly `norm` times steeper
        raw = torch.autograd.functional.jacobian(lambda v: f(v, edge, torch.tensor(1.0)), x, vectorize=True)
        assert torch.allclose(raw.reshape_as(jac) / norm, jac, atol=1e-6)


def test_edges_union_mask_versus_per_row():
    torch.manual_seed(4)
    x = torch.randn(3, 25, 50)
    union = EdgeLayer(50, 2, neighbours=2, union_mask=True)
    per_row = EdgeLayer(50, 2, neighbours=2, union_mask=False)
    per_row.load_state_dict(union.state_dict())
    qk = union.qk(x).reshape(3, 25, 2, 2, 50).permute(2, 0, 3, 1, 4)
    attn = (qk[0] @ qk[1].transpose(-2, -1) * 50 ** -0.5).softmax(dim=-1)
    m_union, m_row = union.sparsity_mask(attn), per_row.sparsity_mask(attn)
    assert (m_row.sum(-1) <= 3).all()  # own top-2 plus itself
    assert (m_row <= m_union).all() and m_union.sum() > m_row.sum()
    shared = m_union.amin(dim=1, keepdim=True)  # columns every row keeps
    assert torch.equal(m_union, torch.maximum(shared, torch.eye(25)))  # rows differ only by self-loops
    edge = union(x)
    assert edge.shape == (3, 2, 25, 25) and (edge >= 0).all()
    assert torch.allclose(edge, edge.transpose(-1, -2), atol=1e-6)
    assert torch.allclose(normalise_edges(torch.eye(4)[None]), torch.eye(4)[None])


def test_actnorm_initialises_once_and_survives_reload():
    torch.manual_seed(5)
    norm = ActNorm(25)
    x = 3 + 2 * torch.randn(16, 25, 50)
    y, logdet = norm(x)
    assert y.mean(dim=(0, 2)).abs().max() < 1e-4 and (y.std(dim=(0, 2)) - 1).abs().max() < 1e-2
    assert logdet.shape == (16,)
    assert torch.allclose(norm.inverse(y), x, atol=1e-4)
    fresh = ActNorm(25)
    fresh.load_state_dict(norm.state_dict())
    fresh(torch.randn(4, 25, 50))  # a loaded ActNorm must not re-initialise from new data
    assert torch.equal(fresh.log_scale, norm.log_scale)


def test_logdet_estimate_matches_exact_value():
    torch.manual_seed(6)
    window = 6
    gnn = ReversibleGNN(layers=1, window=window, width=6, edge_channels=2, actnorm=False, logdet_terms=8)
    edge = _edges(1, window, 2)
    x = torch.randn(1, 25, window)
    # 300 copies of one input: each gets its own Hutchinson probe, their mean is the estimate
    _, estimates = gnn(x.expand(300, -1, -1), edge.expand(300, -1, -1, -1), with_logdet=True)
    jac = torch.autograd.functional.jacobian(lambda v: gnn(v, edge)[0], x, vectorize=True)
    exact = float(torch.linalg.slogdet(jac.reshape(25 * window, -1))[1])
    assert abs(float(estimates.detach().mean()) - exact) < 0.05 + 0.1 * abs(exact)


def test_positions_and_perceptual_output():
    pos = sinusoidal_positions(5, 8)
    assert torch.allclose(pos[0, :4], torch.sin(torch.tensor(1.0) * torch.exp(-torch.arange(4) * torch.log(torch.tensor(1e4)) / 3)))
    p = PerceptualProcessor(12, 16, dim=16, heads=2, layers=2, output_dim=7).eval()
    out = p(torch.randn(3, 50, 12), torch.randn(3, 50, 16))
    assert out.shape == (3, 50, 7)
    assert isinstance(p.proj_audio, torch.nn.Identity)  # audio already has the model width


def test_cognitive_processor_shapes():
    mu, edge = CognitiveProcessor(16, window=50, edge_channels=4)(torch.randn(2, 50, 16))
    assert mu.shape == (2, 25, 50) and edge.shape == (2, 4, 25, 25)
